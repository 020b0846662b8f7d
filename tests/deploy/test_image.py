"""The container image, replayed without a Docker engine: the Dockerfile's install steps run in a
fresh virtualenv, and its entrypoint and command really start each role."""

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.credential_service.callers.api_keys import hash_api_key, new_api_key
from tests.support.apps import new_private_key, new_public_key
from tests.support.servers import free_port, running_argv

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Image:
    entrypoint: list[str]
    cmd: list[str]
    env: dict[str, str]
    syncs: list[list[str]]
    user: str


def default_target(lines: list[str]) -> list[str]:
    """The instructions of the last stage (what ``docker build`` builds without --target),
    after those of the stages it is built FROM, by name."""
    stages: list[tuple[str | None, str, list[str]]] = []  # name, FROM, instructions
    for line in lines:
        if line.startswith("FROM "):
            words = line.split()
            stages.append((words[3] if len(words) > 3 else None, words[1], []))
        elif stages:
            stages[-1][2].append(line)
    named = {name: (base, body) for name, base, body in stages if name}
    _, base, body = stages[-1]
    chain = [body]
    while base in named:
        base, parent = named[base]
        chain.insert(0, parent)
    return [line for part in chain for line in part]


def read_dockerfile() -> Image:
    """ENTRYPOINT, CMD, USER, the runtime ENV and the uv commands, read from the Dockerfile."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    final = default_target(lines)
    env: dict[str, str] = {}
    for line in final:
        if line.startswith("ENV "):
            env.update(dict(re.findall(r"(\w+)=(\S+)", line[4:])))
    syncs = [
        match.group(1).split() for line in lines if (match := re.search(r"uv sync ([^&;]*)", line))
    ]
    return Image(
        entrypoint=json.loads(next(line[11:] for line in final if line.startswith("ENTRYPOINT "))),
        cmd=json.loads(next(line[4:] for line in final if line.startswith("CMD "))),
        env=env,
        syncs=syncs,
        user=next(line[5:] for line in final if line.startswith("USER ")),
    )


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image's virtualenv, built by the Dockerfile's own uv commands from a copy of the
    files it copies (pyproject.toml, uv.lock, README.md, app/)."""
    uv = ROOT / ".tools" / "bin" / "uv"
    if not uv.exists():
        uv = Path(shutil.which("uv") or "uv")
    root = tmp_path_factory.mktemp("image")
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "app", src / "app", ignore=shutil.ignore_patterns("__pycache__"))
    target = root / "venv"
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(target),
        "UV_NO_DEV": "1",
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_LINK_MODE": "copy",
        "UV_COMPILE_BYTECODE": "0",
    }
    for args in read_dockerfile().syncs:
        subprocess.run(
            [str(uv), "sync", *args, "--python", sys.executable, "--quiet"],
            cwd=src,
            env=env,
            check=True,
            timeout=600,
        )
    shutil.rmtree(src)  # nothing may depend on the source tree
    return target


def test_install_is_locked_runtime_only_and_not_editable(venv: Path) -> None:
    """The image gets the runtime dependencies only, a real copy of the package (web assets
    included), and runs as the numeric non-root user."""
    site = next(venv.glob("lib/python3.*/site-packages"))
    assert (site / "app" / "credential_service" / "app.py").exists()
    assert (site / "app" / "credential_service" / "web" / "demo.html").exists()
    assert not (site / "pytest").exists()
    assert not any("upload_auth" in p.name for p in site.glob("*.pth"))
    assert read_dockerfile().user == "10001:10001"


@pytest.mark.parametrize("role", ["serve", "upload-api", "dev"])
def test_the_container_command_starts_each_role(venv: Path, tmp_path: Path, role: str) -> None:
    """ENTRYPOINT + CMD (the default: serve), or ENTRYPOINT + another role, start and answer."""
    image = read_dockerfile()
    args = list(image.cmd) if role == "serve" else [role, *image.cmd[1:]]
    # The container listens on every interface, port 8000; here, loopback and a free port.
    port = free_port()
    args[args.index("--host") + 1] = "127.0.0.1"
    args[args.index("--port") + 1] = str(port)
    env = {
        name: value.replace("/app/.venv", str(venv)).replace("$PATH", os.environ["PATH"])
        for name, value in image.env.items()
    }
    key = new_api_key()
    env.update(
        {
            "UPLOAD_AUTH_STORAGE_DIR": str(tmp_path / "data"),  # /data/uploads in the image
            "IMAGEKIT_PUBLIC_KEY": new_public_key(),
            "IMAGEKIT_PRIVATE_KEY": new_private_key(),
            "UPLOAD_AUTH_CALLERS": json.dumps(
                {"api_keys": [{"name": "app", "hash": hash_api_key(key)}]}
            ),
        }
    )
    argv = [str(venv / "bin" / image.entrypoint[0]), *image.entrypoint[1:], *args]
    with running_argv(argv, port=port, env=env, log=tmp_path / "log", cwd=Path("/")) as server:
        if role == "serve":
            assert httpx.get(server.url + "/v1/auth").status_code == 401
            file = {"fileName": "a.png", "fileSize": 10, "mimeType": "image/png"}
            assert (
                httpx.post(
                    server.url + "/v2/token", json=file, headers={"Authorization": f"Bearer {key}"}
                ).status_code
                == 200
            )
        elif role == "upload-api":
            assert httpx.get(server.url + "/readyz").status_code == 200
        else:
            assert httpx.get(server.url + "/demo/").status_code == 200
