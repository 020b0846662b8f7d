"""The whole flow over real HTTP: the credential service and the upload API as separate uvicorn
processes on loopback, clients with httpx and the official imagekitio SDK."""

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from imagekitio import ImageKit
from imagekitio.types.file_upload_response import FileUploadResponse

from tests.support.apps import new_private_key, new_public_key
from tests.support.samples import jpeg, png, v1_signature
from tests.support.servers import Server, clean_env, peak_rss_kib, redis_server, running
from tests.support.uploads import basic, leftovers

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024


@dataclass
class Stack:
    service: Server
    upload_api: Server
    storage: Path
    public_key: str
    private_key: str

    def v1(self) -> dict[str, Any]:
        response = httpx.get(self.service.url + "/v1/auth")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def v2(self, data: bytes, name: str = "cat.png", mime: str = "image/png") -> dict[str, Any]:
        response = httpx.post(
            self.service.url + "/v2/token",
            json={"fileName": name, "fileSize": len(data), "mimeType": mime},
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def upload_v1(self, data: bytes, cred: dict[str, Any], name: str = "cat.png") -> httpx.Response:
        fields = {
            "fileName": name,
            "publicKey": cred["publicKey"],
            "token": cred["token"],
            "expire": str(cred["expire"]),
            "signature": cred["signature"],
        }
        return httpx.post(
            self.upload_api.url + "/api/v1/files/upload", data=fields, files={"file": (name, data)}
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stack")
    public, private = new_public_key(), new_private_key()
    keys = {"IMAGEKIT_PUBLIC_KEY": public, "IMAGEKIT_PRIVATE_KEY": private}
    storage = root / "uploads"
    with (
        redis_server(root / "redis.log") as redis_url,
        running(
            ["upload-api"],
            env=clean_env(
                **keys, UPLOAD_AUTH_STORAGE_DIR=str(storage), UPLOAD_AUTH_REDIS_URL=redis_url
            ),
            log=root / "upload-api.log",
        ) as upload_api,
    ):
        service_env = clean_env(
            **keys,
            UPLOAD_AUTH_UPLOAD_API_URL=upload_api.url,
            UPLOAD_AUTH_STORAGE_DIR=str(root / "unused"),
            UPLOAD_AUTH_REDIS_URL=redis_url,
        )
        with running(["dev"], env=service_env, log=root / "service.log") as service:
            yield Stack(service, upload_api, storage, public, private)


def test_v1_credential_uploads_and_is_served_back(stack: Stack) -> None:
    """/v1/auth -> upload -> 200; the file is on disk and served back byte for byte."""
    data = png(9, 4)
    response = stack.upload_v1(data, stack.v1())
    assert response.status_code == 200, response.text
    body = response.json()
    assert (stack.storage / "files" / body["name"]).read_bytes() == data
    served = httpx.get(body["url"])
    assert served.content == data
    assert served.headers["content-type"] == "image/png"


def test_v1_reuse_and_tampering_are_rejected(stack: Stack) -> None:
    """Reuse, a flipped signature byte, expired and too-far expire: all rejected."""
    cred = stack.v1()
    assert stack.upload_v1(png(), cred).status_code == 200
    reuse = stack.upload_v1(png(), cred)
    assert reuse.status_code == 400
    assert "has been used before" in reuse.json()["message"]

    flipped = stack.v1()
    flipped["signature"] = ("1" if flipped["signature"][0] != "1" else "2") + flipped["signature"][
        1:
    ]
    assert stack.upload_v1(png(), flipped).status_code == 400

    now = stack.v1()["expire"] - 1800
    for expire in (now - 120, now + 7200):
        token = f"token-{expire}"
        cred = {
            "publicKey": stack.public_key,
            "token": token,
            "expire": expire,
            "signature": v1_signature(stack.private_key.encode(), token, expire),
        }
        response = stack.upload_v1(png(), cred)
        assert response.status_code == 400
        assert "invalid expire parameter" in response.json()["message"]


def upload_v2(
    stack: Stack, data: bytes, fields: dict[str, str], token: str, name: str = "cat.png"
) -> httpx.Response:
    return httpx.post(
        stack.upload_api.url + "/api/v2/files/upload",
        data={**fields, "token": token},
        files={"file": (name, data)},
    )


def test_v2_token_uploads_with_its_fields(stack: Stack) -> None:
    """/v2/token -> upload with exactly the returned fields -> 200."""
    data = png(3, 3)
    grant = stack.v2(data)
    assert grant["uploadUrl"] == stack.upload_api.url + "/api/v2/files/upload"
    response = upload_v2(stack, data, grant["fields"], grant["token"])
    assert response.status_code == 200, response.text
    assert httpx.get(response.json()["url"]).content == data


@pytest.mark.parametrize(
    "change", [{"fileName": "evil.png"}, {"folder": "/admin"}, {"isPrivateFile": "false"}]
)
def test_v2_changed_fields_are_invalid_payload(stack: Stack, change: dict[str, str]) -> None:
    """A changed fileName or folder, or an extra field: ImageKit's invalid payload."""
    data = png()
    grant = stack.v2(data)
    response = upload_v2(stack, data, {**grant["fields"], **change}, grant["token"])
    assert response.status_code == 400
    assert response.json()["message"].startswith("Your request contains invalid payload.")


def test_v2_bigger_or_other_type_fails_checks(stack: Stack) -> None:
    """A bigger file than declared, or another MIME type: checks failed."""
    declared = png(2, 2)
    grant = stack.v2(declared)
    bigger = upload_v2(stack, png(50, 50), grant["fields"], grant["token"])
    assert bigger.json()["message"] == "Your request failed 'checks' validation."
    photo = jpeg()
    grant = stack.v2(photo + b"\x00" * 64)
    other = upload_v2(stack, photo, grant["fields"], grant["token"])
    assert other.json()["message"] == "Your request failed 'checks' validation."


def test_official_python_sdk_uploads_server_side(stack: Stack) -> None:
    """imagekitio with base_url pointed here uploads with Basic auth; its model parses us."""
    client = ImageKit(private_key=stack.private_key, base_url=stack.upload_api.url)
    data = png(6, 6)
    result = client.files.upload(
        file=data, file_name="sdk.png", folder="/sdk", tags=["a", "b"], response_fields=["tags"]
    )
    assert isinstance(result, FileUploadResponse)
    assert (result.width, result.height, result.size) == (6, 6, len(data))
    assert result.tags == ["a", "b"]
    assert result.file_path is not None
    assert result.file_path.startswith("/sdk/sdk_")
    assert httpx.get(str(result.url)).content == data


def test_official_sdk_surfaces_our_errors(stack: Stack) -> None:
    """A wrong private key gives the SDK ImageKit's 403 message."""
    import imagekitio

    client = ImageKit(private_key=new_private_key(), base_url=stack.upload_api.url, max_retries=0)
    with pytest.raises(imagekitio.PermissionDeniedError) as info:
        client.files.upload(file=png(), file_name="x.png")
    assert "Your account cannot be authenticated." in str(info.value)


def test_oversize_upload_is_cut_off_with_flat_memory(stack: Stack) -> None:
    """A 1 GB body against the 25 MB limit: refused after little more than 25 MB, server peak
    RSS grows by less than 32 MB, and nothing is left on disk."""
    before = peak_rss_kib(stack.upload_api.process.pid)
    sent = 0
    boundary = "oversizeboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="fileName"\r\n\r\n'
        f'big.png\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="big.png"\r\nContent-Type: image/png\r\n\r\n'
    ).encode()
    chunk = b"\x00" * MIB

    def body() -> Iterator[bytes]:
        nonlocal sent
        yield head + png()
        for _ in range(1024):
            sent += len(chunk)
            yield chunk

    response = httpx.post(
        stack.upload_api.url + "/api/v1/files/upload",
        content=body(),
        headers={
            "content-type": f"multipart/form-data; boundary={boundary}",
            **basic(stack.private_key),
        },
        timeout=60,
    )
    assert response.status_code == 400
    assert response.json()["message"].endswith("The file size exceeds limits.")
    assert sent < 100 * MIB
    growth_mib = (peak_rss_kib(stack.upload_api.process.pid) - before) / 1024
    assert growth_mib < 32
    assert leftovers(stack.storage) == []
    assert not any(p.name.startswith("big") for p in (stack.storage / "files").rglob("*"))


def test_replicas_share_used_tokens_through_redis(tmp_path: Path) -> None:
    """Two upload API processes on one redis-server: a token used on one fails on the other
    (a v1 token signed elsewhere, which these replicas are told to accept)."""
    public, private = new_public_key(), new_private_key()
    keys = {"IMAGEKIT_PUBLIC_KEY": public, "IMAGEKIT_PRIVATE_KEY": private}
    with redis_server(tmp_path / "redis.log") as redis_url:
        env = clean_env(
            **keys,
            UPLOAD_AUTH_REDIS_URL=redis_url,
            UPLOAD_AUTH_STORAGE_DIR=str(tmp_path / "shared"),
            UPLOAD_AUTH_ACCEPT_UNBOUND_V1="true",
        )
        with (
            running(["upload-api"], env=env, log=tmp_path / "a.log", ready="/readyz") as one,
            running(["upload-api"], env=env, log=tmp_path / "b.log", ready="/readyz") as two,
        ):
            token, expire = "shared-token-1", int(time.time()) + 1800
            fields = {
                "fileName": "r.png",
                "publicKey": public,
                "token": token,
                "expire": str(expire),
                "signature": v1_signature(private.encode(), token, expire),
            }
            first = httpx.post(
                one.url + "/api/v1/files/upload", data=fields, files={"file": ("r.png", png())}
            )
            second = httpx.post(
                two.url + "/api/v1/files/upload", data=fields, files={"file": ("r.png", png())}
            )
    assert first.status_code == 200, first.text
    assert second.status_code == 400
    assert "has been used before" in second.json()["message"]
