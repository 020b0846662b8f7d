"""The image itself, built by scripts/containers from the project's Dockerfile and run in
Debian's podman: every role as uid 10001 on a read-only root filesystem with only /data
writable, key files mounted as compose and Kubernetes mount them, SIGTERM draining a request
in flight, and no key in the container's logs."""

import base64
import io
import json
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from app.credential_service.callers.api_keys import hash_api_key, new_api_key
from tests.support.apps import new_private_key, new_public_key
from tests.support.samples import png
from tests.support.servers import container_images, free_port, wait_until_ok

pytestmark = pytest.mark.e2e

#: This run's containers' names end with it: two checkouts (or a run that failed before) never
#: meet, and each test removes its own whatever happens (``started``).
RUN = "-" + secrets.token_hex(3)


@pytest.fixture(scope="session")
def image() -> str:
    """The project's image, built (or found in the cache) by scripts/containers."""
    return container_images()["UPLOAD_AUTH_IMAGE"]


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check)


class Container:
    def __init__(self, name: str, url: str) -> None:
        self.name, self.url = name, url

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def wait_ready(self) -> float:
        """Seconds until /readyz answered 200."""
        return wait_until_ok(self.url + "/readyz", why=self.logs)


LOCKED_DOWN = [
    "--read-only",
    "--user",
    "10001:10001",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
]


def run(
    image: str, name: str, command: list[str], mounts: list[str], env: dict[str, str]
) -> Container:
    port = free_port()
    podman("rm", "-f", name, check=False)
    options = [f"--name={name}", "-d", *LOCKED_DOWN, "-p", f"127.0.0.1:{port}:8000"]
    for mount in mounts:
        options += ["-v", mount]
    for key, value in env.items():
        options += ["-e", f"{key}={value}"]
    inside = ["--host", "0.0.0.0", "--port", "8000"]  # noqa: S104 - the container's own
    podman("run", *options, image, *command, *inside)
    return Container(name, f"http://127.0.0.1:{port}")


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    """A key pair as compose writes it: files 0644 in a 0700 folder (make-dev-keys)."""
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    files = {
        "public": secrets / "imagekit_public_key",
        "private": secrets / "imagekit_private_key",
    }
    files["public"].write_text(new_public_key() + "\n")
    files["private"].write_text(new_private_key() + "\n")
    for path in files.values():
        path.chmod(0o644)
    return files


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """The one writable path, as a volume the container's user owns."""
    path = tmp_path / "data"
    path.mkdir()
    os.chown(path, 10001, 10001)
    return path


@pytest.fixture
def started() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        podman("rm", "-f", "--volumes", name, check=False)


COMPOSE_KEYS = {
    "IMAGEKIT_PUBLIC_KEY_FILE": "/run/secrets/imagekit_public_key",
    "IMAGEKIT_PRIVATE_KEY_FILE": "/run/secrets/imagekit_private_key",
}


def serve_env(api_key: str) -> dict[str, str]:
    """``serve``'s environment in compose: the key files, and one API-key caller."""
    callers = {"api_keys": [{"name": "backend", "hash": hash_api_key(api_key)}]}
    return {**COMPOSE_KEYS, "UPLOAD_AUTH_CALLERS": json.dumps(callers)}


def v2_token(container: Container, api_key: str) -> httpx.Response:
    """A v2 credential for a small PNG, asked as the API-key caller."""
    return httpx.post(
        container.url + "/v2/token",
        json={"fileName": "a.png", "fileSize": 10, "mimeType": "image/png"},
        headers={"Authorization": f"Bearer {api_key}"},
    )


def compose_mounts(keys: dict[str, Path], data: Path) -> list[str]:
    """Compose's file secrets: each file bind-mounted read-only, owner and mode as on the host."""
    return [
        f"{keys['public']}:/run/secrets/imagekit_public_key:ro",
        f"{keys['private']}:/run/secrets/imagekit_private_key:ro",
        f"{data}:/data",
    ]


@pytest.mark.parametrize("role", ["serve", "upload-api", "dev"])
def test_each_role_runs_locked_down_with_compose_secrets(
    image: str,
    keys: dict[str, Path],
    data: Path,
    started: list[str],
    role: str,
) -> None:
    """Every role starts as uid 10001 on a read-only root filesystem, reads its keys from
    compose's file secrets, answers /healthz and /readyz, can write /data and nothing else,
    and never prints its private key."""
    api_key = new_api_key()
    env = serve_env(api_key) if role == "serve" else dict(COMPOSE_KEYS)
    name = f"upload-auth-test-{role}{RUN}"
    started.append(name)
    container = run(image, name, [role], compose_mounts(keys, data), env)
    container.wait_ready()
    assert httpx.get(container.url + "/healthz").json() == {"status": "ok"}
    assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
    assert podman("exec", name, "touch", "/data/probe").returncode == 0
    refused = podman("exec", name, "touch", "/app/probe", check=False)
    assert refused.returncode != 0
    assert "Read-only file system" in refused.stderr
    if role == "serve":
        answer = httpx.get(
            container.url + "/v1/auth", headers={"Authorization": f"Bearer {api_key}"}
        )
        assert answer.status_code == 403  # v1 is opt-in per profile outside development mode
        assert answer.json()["type"] == "/problems/v1-not-allowed"
        token = v2_token(container, api_key)
        assert token.status_code == 200, token.text
    private = keys["private"].read_text().strip()
    logs = container.logs()
    assert "ready" in logs
    assert private not in logs
    assert api_key not in logs


def test_kubernetes_secret_volume_and_config_file(
    image: str, keys: dict[str, Path], data: Path, started: list[str], tmp_path: Path
) -> None:
    """Keys as Kubernetes mounts a Secret (a directory of files) and the policy as a mounted
    ConfigMap file, as deploy/kubernetes does: the service signs with them."""
    secret = tmp_path / "secret-volume"
    secret.mkdir()
    (secret / "key-1.private").write_text(keys["private"].read_text())
    (secret / "key-1.private").chmod(0o644)
    public = keys["public"].read_text().strip()
    config = tmp_path / "upload-auth.toml"
    api_key = new_api_key()
    config.write_text(
        f"""
[[keys]]
public_key = "{public}"
private_key_file = "/run/secrets/upload-auth/key-1.private"

[[callers.api_keys]]
name = "backend"
hash = "{hash_api_key(api_key)}"
"""
    )
    config.chmod(0o644)
    name = f"upload-auth-test-kube-mounts{RUN}"
    started.append(name)
    container = run(
        image,
        name,
        ["serve"],
        [
            f"{secret}:/run/secrets/upload-auth:ro",
            f"{config}:/etc/upload-auth/upload-auth.toml:ro",
            f"{data}:/data",
        ],
        {"UPLOAD_AUTH_CONFIG_FILE": "/etc/upload-auth/upload-auth.toml"},
    )
    container.wait_ready()
    token = v2_token(container, api_key)
    assert token.status_code == 200, token.text
    header = json.loads(base64.urlsafe_b64decode(token.json()["token"].split(".")[0] + "=="))
    assert header["kid"] == public


def test_sigterm_drains_an_upload_in_flight(
    image: str, keys: dict[str, Path], data: Path, started: list[str]
) -> None:
    """``podman stop`` (SIGTERM) while an upload's body is still arriving: the upload is
    answered 200 and stored, then the container exits cleanly."""
    name = f"upload-auth-test-drain{RUN}"
    started.append(name)
    container = run(image, name, ["upload-api"], compose_mounts(keys, data), dict(COMPOSE_KEYS))
    container.wait_ready()
    private = keys["private"].read_text().strip()
    boundary = "drainboundary"
    picture = png(16, 16)
    fields = {"fileName": "drained.png", "useUniqueFileName": "false"}
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    )
    body += (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="drained.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + picture
        + f"\r\n--{boundary}--\r\n".encode()
    )
    auth = base64.b64encode(f"{private}:".encode()).decode()
    head = (
        "POST /api/v1/files/upload HTTP/1.1\r\nHost: test\r\n"
        f"Authorization: Basic {auth}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    answer = stopped_mid_request(container, name, head + body, split=len(head) + 100)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert (data / "uploads" / "files" / "drained.png").read_bytes() == picture


def stopped_mid_request(container: Container, name: str, request: bytes, *, split: int) -> bytes:
    """Send ``request`` up to ``split``, ``podman stop`` (SIGTERM) the container, send the
    rest: the answer. The container must then have exited cleanly, after saying it drained."""
    port = int(container.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request[:split])
        time.sleep(0.5)  # the request is in flight
        stopping = subprocess.Popen(["podman", "stop", "-t", "20", name])
        time.sleep(1.0)  # SIGTERM has arrived; the server drains
        sock.sendall(request[split:])
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert stopping.wait(timeout=30) == 0
    state = podman("inspect", name, "--format", "{{.State.ExitCode}}").stdout.strip()
    assert state == "0"
    assert "shutting down" in container.logs().lower()
    return answer


@pytest.mark.parametrize("role", ["serve", "dev"])
def test_sigterm_drains_a_credential_request_in_flight(
    image: str, keys: dict[str, Path], data: Path, started: list[str], role: str
) -> None:
    """The credential roles drain too: a v2 credential request whose body is still arriving
    when SIGTERM comes is answered 200."""
    api_key = new_api_key()
    env = dict(COMPOSE_KEYS)
    headers = ""
    if role == "serve":
        env["UPLOAD_AUTH_CALLERS"] = json.dumps(
            {"api_keys": [{"name": "backend", "hash": hash_api_key(api_key)}]}
        )
        headers = f"Authorization: Bearer {api_key}\r\n"
    name = f"upload-auth-test-drain-{role}{RUN}"
    started.append(name)
    container = run(image, name, [role], compose_mounts(keys, data), env)
    container.wait_ready()
    body = json.dumps({"fileName": "a.png", "fileSize": 10, "mimeType": "image/png"}).encode()
    head = (
        f"POST /v2/token HTTP/1.1\r\nHost: test\r\n{headers}"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    answer = stopped_mid_request(container, name, head + body, split=len(head) + 10)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert b'"token"' in answer


def test_the_media_workers_run_in_the_locked_down_container(
    image: str, keys: dict[str, Path], data: Path, started: list[str]
) -> None:
    """The media libraries (Pillow, pillow-heif, libvips, PyAV, ExifTool) load in the image,
    their worker processes start as uid 10001 on the read-only root, and the answer carries
    what they read (embedded metadata by ExifTool); a thumbnail is made and served, and a large
    image reduced (by libvips)."""
    from tests.support import media_files

    name = f"upload-auth-test-media{RUN}"
    started.append(name)
    container = run(image, name, ["upload-api"], compose_mounts(keys, data), dict(COMPOSE_KEYS))
    container.wait_ready()
    private = keys["private"].read_text().strip()
    auth = {"Authorization": "Basic " + base64.b64encode(f"{private}:".encode()).decode()}
    files = {
        "camera.jpg": media_files.camera_jpeg(320, 240),
        "phone.heic": media_files.image("heic", 64, 48, camera=True),
        "clip.mp4": media_files.mp4(2, 160, 120),
        "poster.png": media_files.image("png", 1200, 900),
    }
    answers = {}
    for file_name, content in files.items():
        response = httpx.post(
            container.url + "/api/v1/files/upload",
            data={"fileName": file_name, "useUniqueFileName": "false"}
            | {"responseFields": "embeddedMetadata"},
            files={"file": (file_name, content)},
            headers=auth,
            timeout=60,
        )
        assert response.status_code == 200, response.text
        answers[file_name] = response.json()
    assert (answers["camera.jpg"]["width"], answers["camera.jpg"]["height"]) == (320, 240)
    assert answers["camera.jpg"]["embeddedMetadata"]["Make"] == media_files.CAMERA["Make"]
    assert answers["camera.jpg"]["embeddedMetadata"]["ExifByteOrder"] == "MM"  # by ExifTool
    assert answers["phone.heic"]["embeddedMetadata"]["Model"] == media_files.CAMERA["Model"]
    assert answers["clip.mp4"]["duration"] == 2
    assert answers["clip.mp4"]["videoCodec"] == "h264"
    thumbnail_path = urlsplit(answers["camera.jpg"]["thumbnailUrl"]).path
    thumbnail = httpx.get(container.url + thumbnail_path)
    assert thumbnail.status_code == 200, thumbnail.text
    assert thumbnail.headers["content-type"] == "image/webp"
    reduced = httpx.get(container.url + urlsplit(answers["poster.png"]["url"]).path + "?tr=w-500")
    assert reduced.status_code == 200, reduced.text
    assert reduced.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(reduced.content)) as picture:
        assert picture.size == (500, 375)
    assert "media worker task failed" not in container.logs()


def test_the_credential_service_image_runs_serve_and_nothing_it_does_not_need(
    keys: dict[str, Path], data: Path, started: list[str]
) -> None:
    """The Dockerfile's credential-service target: ``serve`` locked down as in compose, without
    the upload API's media libraries or the bulk uploader's progress bar; asked for the upload
    API, it says in one line what is missing, and exits 2."""
    small = container_images()["UPLOAD_AUTH_SERVICE_IMAGE"]
    api_key = new_api_key()
    env = serve_env(api_key)
    name = f"upload-auth-test-service{RUN}"
    started.append(name)
    container = run(small, name, ["serve"], compose_mounts(keys, data), env)
    container.wait_ready()
    token = v2_token(container, api_key)
    assert token.status_code == 200, token.text
    absent = podman(
        "exec",
        name,
        "python",
        "-c",
        "import importlib.util as u; print(u.find_spec('PIL'), "
        "u.find_spec('av'), u.find_spec('rich'))",
    )
    assert absent.stdout.strip() == "None None None"
    refused = podman("run", "--rm", *LOCKED_DOWN, small, "upload-api", check=False)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "upload-auth: the upload API needs its own dependencies (python_multipart, pebble, "
        "PIL, pillow_heif, av, defusedxml missing): pip install 'upload-auth[upload-api]', "
        "or run the full image"
    ]
