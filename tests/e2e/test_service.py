"""The credential service as a real uvicorn process on loopback, started by its own command."""

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from imagekitio import ImageKit

from app.cli import UPLOAD_API_MODULES
from tests.support.apps import new_private_key, new_public_key
from tests.support.servers import BIN, Server, clean_env, running

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    return new_public_key(), new_private_key()


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory, keys: tuple[str, str]) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("dev")
    env = clean_env(
        IMAGEKIT_PUBLIC_KEY=keys[0],
        IMAGEKIT_PRIVATE_KEY=keys[1],
        UPLOAD_AUTH_STORAGE_DIR=str(root / "uploads"),
    )
    log = root / "server.log"
    with running(["dev"], env=env, log=log) as server:
        yield server


def test_v1_over_real_http(dev_server: Server, keys: tuple[str, str]) -> None:
    """A v1 credential from the running service matches the official SDK's signature."""
    response = httpx.get(dev_server.url + "/v1/auth", params={"t": "0.5"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    official = ImageKit(private_key=keys[1]).helper.get_authentication_parameters(
        token=body["token"], expire=body["expire"]
    )
    assert official["signature"] == body["signature"]
    assert body["publicKey"] == keys[0]


def test_v2_over_real_http(dev_server: Server, keys: tuple[str, str]) -> None:
    """A v2 JWT from the running service verifies with PyJWT and the private key."""
    response = httpx.post(
        dev_server.url + "/v2/token",
        json={"fileName": "cat.png", "fileSize": 48213, "mimeType": "image/png"},
    )
    assert response.status_code == 200
    body = response.json()
    payload = jwt.decode(body["token"], keys[1], algorithms=["HS256"])
    assert {k: v for k, v in payload.items() if k not in ("iat", "exp")} == body["fields"]


def test_dev_mode_says_so_loudly(dev_server: Server, keys: tuple[str, str]) -> None:
    """The development banner is in the output; the private key is not."""
    httpx.get(dev_server.url + "/v1/auth")
    output = dev_server.output()
    assert "DEVELOPMENT MODE" in output
    assert keys[1] not in output


def test_serve_without_caller_auth_refuses_to_start(tmp_path: Path, keys: tuple[str, str]) -> None:
    """`upload-auth serve` with keys but no caller authentication exits 2, one line, no key."""
    result = subprocess.run(
        [str(BIN / "upload-auth"), "serve", "--port", "1"],
        env=clean_env(IMAGEKIT_PUBLIC_KEY=keys[0], IMAGEKIT_PRIVATE_KEY=keys[1]),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "no caller authentication" in result.stderr
    assert keys[1] not in result.stderr + result.stdout


def test_dev_mode_without_keys_generates_a_pair(tmp_path: Path) -> None:
    """`upload-auth dev` with nothing configured starts and signs with a throwaway pair."""
    env = clean_env(UPLOAD_AUTH_STORAGE_DIR=str(tmp_path / "uploads"))
    with running(["dev"], env=env, log=tmp_path / "log") as server:
        body = httpx.get(server.url + "/v1/auth").json()
        assert body["publicKey"].startswith("public_dev_")
        assert "throwaway" in server.output()


def test_dev_serves_the_upload_api_beside_the_service(dev_server: Server) -> None:
    """`upload-auth dev` answers v2 credentials whose uploadUrl it also accepts."""
    from tests.support.samples import png

    data = png(4, 4)
    grant = httpx.post(
        dev_server.url + "/v2/token",
        json={"fileName": "dev.png", "fileSize": len(data), "mimeType": "image/png"},
    ).json()
    assert grant["uploadUrl"] == dev_server.url + "/api/v2/files/upload"
    uploaded = httpx.post(
        grant["uploadUrl"],
        data={**grant["fields"], "token": grant["token"]},
        files={"file": ("dev.png", data)},
    )
    assert uploaded.status_code == 200, uploaded.text
    assert httpx.get(uploaded.json()["url"]).content == data


#: What `upload-auth serve` has no use for with API-key callers: the HTTP client (and the rich
#: and pygments its command line pulls in), PyJWT and cryptography, the Redis client, and
#: the upload API's own dependencies (not in the credential-service image).
NOT_FOR_SERVE = (
    "httpx",
    "rich",
    "pygments",
    "jwt",
    "cryptography",
    "redis",
    # python_multipart aside: Starlette imports it when installed, and runs without it
    *(name for name in UPLOAD_API_MODULES if name != "python_multipart"),
)
PROBE = """
import sys
import uvicorn
uvicorn.run = lambda app, **options: None  # everything up to the server starting
from app.cli import main
main(["serve"])
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in NOT_FOR_SERVE)))
"""


def test_serve_loads_only_what_it_runs(keys: tuple[str, str]) -> None:
    """Memory per replica and cold start: the credential service's command does not import
    the bulk uploader's HTTP client, the JWT verifier or the Redis client."""
    from app.credential_service.callers.api_keys import hash_api_key, new_api_key

    callers = json.dumps({"api_keys": [{"name": "b", "hash": hash_api_key(new_api_key())}]})
    env = clean_env(
        IMAGEKIT_PUBLIC_KEY=keys[0], IMAGEKIT_PRIVATE_KEY=keys[1], UPLOAD_AUTH_CALLERS=callers
    )
    probe = f"NOT_FOR_SERVE = {NOT_FOR_SERVE!r}\n{PROBE}"
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_the_upload_api_without_its_dependencies_is_one_line(keys: tuple[str, str]) -> None:
    """In the credential-service image (no ``upload-api`` extra), ``upload-api`` and ``dev``
    say what is missing and how to get it, in one line with exit 2, not a traceback."""
    absent = "import sys\nfor name in ('PIL', 'av'):\n    sys.modules[name] = None\n"
    hide = "import importlib.util\nfind = importlib.util.find_spec\n"
    hide += "importlib.util.find_spec = lambda n, *a: None if n in ('PIL', 'av') else find(n, *a)\n"
    env = clean_env(IMAGEKIT_PUBLIC_KEY=keys[0], IMAGEKIT_PRIVATE_KEY=keys[1])
    for command in ("upload-api", "dev"):
        probe = f"{absent}{hide}from app.cli import main\nsys.exit(main([{command!r}]))"
        result = subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.splitlines() == [
            "upload-auth: the upload API needs its own dependencies (PIL, av missing): "
            "pip install 'upload-auth[upload-api]', or run the full image"
        ]


def test_dev_mode_with_key_files_does_not_call_them_throwaway(tmp_path: Path) -> None:
    """Keys from files (the SDKs' `..._FILE` variables) are the operator's, not a throwaway
    pair: the development banner does not say so, and they sign."""
    public, private = new_public_key(), new_private_key()
    (tmp_path / "public").write_text(public + "\n")
    (tmp_path / "private").write_text(private + "\n")
    env = clean_env(
        UPLOAD_AUTH_STORAGE_DIR=str(tmp_path / "uploads"),
        IMAGEKIT_PUBLIC_KEY_FILE=str(tmp_path / "public"),
        IMAGEKIT_PRIVATE_KEY_FILE=str(tmp_path / "private"),
    )
    with running(["dev"], env=env, log=tmp_path / "log") as server:
        body = httpx.get(server.url + "/v1/auth").json()
        output = server.output()
    assert body["publicKey"] == public
    assert "DEVELOPMENT MODE" in output
    assert "throwaway" not in output


def test_serve_says_at_start_what_it_cannot_reach(keys: tuple[str, str], tmp_path: Path) -> None:
    """A self-hosted upload API and a Redis that do not answer: one warning line each at
    start, the service starts all the same; with them answering, no warning (#29)."""
    from app.credential_service.callers.api_keys import hash_api_key, new_api_key
    from tests.support.servers import free_port, redis_server

    callers = json.dumps({"api_keys": [{"name": "b", "hash": hash_api_key(new_api_key())}]})
    base = clean_env(
        IMAGEKIT_PUBLIC_KEY=keys[0], IMAGEKIT_PRIVATE_KEY=keys[1], UPLOAD_AUTH_CALLERS=callers
    )
    nobody = f"http://127.0.0.1:{free_port()}"
    env = {
        **base,
        "UPLOAD_AUTH_UPLOAD_API_URL": nobody,
        "UPLOAD_AUTH_REDIS_URL": f"redis://:secret@127.0.0.1:{free_port()}/0",
    }
    with running(["serve"], env=env, log=tmp_path / "alone.log") as alone:
        warned = [line for line in alone.output().splitlines() if "warning:" in line]
    assert len(warned) == 2, warned
    assert warned[0].startswith(f"upload-auth: warning: the upload API at {nobody} does not")
    assert "Redis at redis://127.0.0.1:" in warned[1]
    assert "secret" not in "".join(warned)
    store = {**base, "UPLOAD_AUTH_STORAGE_DIR": str(tmp_path / "store")}
    with (
        redis_server(tmp_path / "redis.log") as redis_url,
        running(["upload-api"], env=store, log=tmp_path / "api.log") as uploads,
        running(
            ["serve"],
            env={
                **base,
                "UPLOAD_AUTH_UPLOAD_API_URL": uploads.url,
                "UPLOAD_AUTH_REDIS_URL": redis_url,
            },
            log=tmp_path / "together.log",
        ) as together,
    ):
        assert "warning:" not in together.output()
