"""POST /api/v1/files/upload in-process: ImageKit's three ways in and its error table."""

import asyncio
import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from imagekitio.types.file_upload_response import FileUploadResponse

from app.core.clock import LEEWAY_SECONDS
from app.core.keys import KeyPair
from app.core.settings import Settings
from app.upload_api.app import create_upload_app
from tests.support.apps import FakeClock, asgi_client
from tests.support.samples import png, v1_signature
from tests.support.uploads import (
    HELP,
    V1,
    assert_imagekit_error,
    basic,
    file_part,
    leftovers,
    upload_client,
    v1_fields,
)

pytestmark = pytest.mark.anyio


async def test_signed_upload_is_stored_and_served(
    uploads: httpx.AsyncClient, pair: KeyPair, clock: FakeClock, storage_dir: Path
) -> None:
    """A v1 upload answers ImageKit's JSON; the bytes are on disk and served back as sent."""
    data = png(7, 3)
    response = await uploads.post(
        V1, data=v1_fields(pair, clock, fileName="cat.png"), files=file_part(data)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    parsed = FileUploadResponse.model_validate(body)
    assert (parsed.width, parsed.height, parsed.size) == (7, 3, len(data))
    assert body["fileType"] == "image"
    assert body["versionInfo"] == {"id": body["fileId"], "name": "Version 1"}
    assert body["name"].startswith("cat_")
    assert body["name"].endswith(".png")
    assert body["filePath"] == "/" + body["name"]
    assert body["url"] == "http://files.test/files/" + body["name"]
    assert (storage_dir / "files" / body["name"]).read_bytes() == data
    served = await uploads.get("/files/" + body["name"])
    assert served.content == data
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert leftovers(storage_dir) == []


async def test_server_side_basic_auth(uploads: httpx.AsyncClient, private_key: str) -> None:
    """Basic auth with the private key as user name works whatever the password."""
    for password in ("do_not_set", ""):
        response = await uploads.post(
            V1, data={"fileName": "a.png"}, files=file_part(), headers=basic(private_key, password)
        )
        assert response.status_code == 200, response.text


async def test_token_is_single_use(
    uploads: httpx.AsyncClient, pair: KeyPair, clock: FakeClock
) -> None:
    """A second upload with the same token gets ImageKit's 'used before' error."""
    fields = v1_fields(pair, clock, fileName="a.png")
    assert (await uploads.post(V1, data=fields, files=file_part())).status_code == 200
    again = await uploads.post(V1, data=fields, files=file_part())
    assert_imagekit_error(
        again,
        400,
        (
            f"The token with value '{fields['token']}' has been used before. We suggest using V4 "
            "UUIDs, or another random string with enough entropy to avoid collisions."
        ),
    )


async def test_token_burns_even_when_the_upload_fails(
    uploads: httpx.AsyncClient, pair: KeyPair, clock: FakeClock
) -> None:
    """A request that fails after authentication still uses its token up."""
    fields = v1_fields(pair, clock)  # no fileName: this upload fails
    first = await uploads.post(V1, data=fields, files=file_part())
    assert_imagekit_error(first, 400, "Your request is missing fileName parameter.")
    retry = await uploads.post(V1, data={**fields, "fileName": "a.png"}, files=file_part())
    assert retry.status_code == 400
    assert "has been used before" in retry.json()["message"]


async def test_flipped_signature_is_rejected(
    uploads: httpx.AsyncClient, pair: KeyPair, clock: FakeClock
) -> None:
    """One changed hex digit of the signature: 400, and nothing stored."""
    fields = v1_fields(pair, clock, fileName="a.png")
    sig = fields["signature"]
    fields["signature"] = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    response = await uploads.post(V1, data=fields, files=file_part())
    assert_imagekit_error(response, 400, "Your request contains invalid signature parameter.")


EXPIRE_ERROR = (
    "Your request contains invalid expire parameter. Expire parameter should be a "
    "Unix time in less than 1 hour into the future."
)


@pytest.mark.parametrize("offset", [-LEEWAY_SECONDS - 1, -86400, 3600 + LEEWAY_SECONDS + 1, 10**9])
async def test_expire_outside_the_window_is_rejected(
    uploads: httpx.AsyncClient, pair: KeyPair, clock: FakeClock, offset: int
) -> None:
    """expire in the past, or more than an hour ahead (beyond the leeway): ImageKit's error."""

    expire = int(clock()) + offset
    fields = {
        "publicKey": pair.public_key,
        "token": "t-1",
        "expire": str(expire),
        "signature": v1_signature(pair.private_key, "t-1", expire),
        "fileName": "a.png",
    }
    assert_imagekit_error(await uploads.post(V1, data=fields, files=file_part()), 400, EXPIRE_ERROR)


@pytest.mark.parametrize("expire", ["", "soon", "-5", "1.5", "1" * 30])
async def test_malformed_expire_is_rejected(
    uploads: httpx.AsyncClient, pair: KeyPair, expire: str
) -> None:
    """expire must be absolute Unix seconds as an integer."""
    fields = {
        "publicKey": pair.public_key,
        "token": "t",
        "expire": expire,
        "signature": "0" * 40,
        "fileName": "a.png",
    }
    assert_imagekit_error(await uploads.post(V1, data=fields, files=file_part()), 400, EXPIRE_ERROR)


async def test_both_methods_at_once(
    uploads: httpx.AsyncClient, pair: KeyPair, clock: FakeClock, private_key: str
) -> None:
    """Basic auth and a signature together: ImageKit's 400."""
    response = await uploads.post(
        V1,
        data=v1_fields(pair, clock, fileName="a.png"),
        files=file_part(),
        headers=basic(private_key),
    )
    assert_imagekit_error(
        response,
        400,
        (
            "Your request contains both signature and basic auth parameter. Use only one method, "
            "you might be exposing your private API key."
        ),
    )


async def test_no_authentication(uploads: httpx.AsyncClient, public_key: str) -> None:
    """Neither method: ImageKit's 401, with or without the public key (which names the
    account, not a credential)."""
    for fields in ({"fileName": "a.png"}, {"fileName": "a.png", "publicKey": public_key}):
        response = await uploads.post(V1, data=fields, files=file_part())
        assert_imagekit_error(response, 401, "Your request does not contain private API key.")


@pytest.mark.parametrize(
    ("left_out", "message"),
    [
        ("signature", "Your request is missing signature parameter."),
        ("token", "Your request is missing token parameter."),
        ("publicKey", "Your request is missing publicKey parameter."),
        (
            "expire",
            "Your request contains invalid expire parameter. Expire parameter should be a Unix "
            "time in less than 1 hour into the future.",
        ),
    ],
)
async def test_a_credential_with_a_part_missing_names_it(
    uploads: httpx.AsyncClient, pair: KeyPair, clock: FakeClock, left_out: str, message: str
) -> None:
    """A v1 credential short of one part is a 400 naming that part, whichever it is (the 401
    is for a request that brings no credential at all); empty counts as missing."""
    for missing in ("absent", "empty"):
        fields = v1_fields(pair, clock, fileName="a.png")
        if missing == "absent":
            del fields[left_out]
        else:
            fields[left_out] = ""
        response = await uploads.post(V1, data=fields, files=file_part())
        assert_imagekit_error(response, 400, message)


async def test_unknown_keys(uploads: httpx.AsyncClient, pair: KeyPair, clock: FakeClock) -> None:
    """An unknown public key or a wrong private key: ImageKit's 403."""
    fields = v1_fields(pair, clock, fileName="a.png")
    fields["publicKey"] = "public_unknown"
    forbidden = "Your account cannot be authenticated."
    assert_imagekit_error(await uploads.post(V1, data=fields, files=file_part()), 403, forbidden)
    wrong = await uploads.post(
        V1,
        data={"fileName": "a.png"},
        files=file_part(),
        headers=basic("private_wrong_key_0123456789abcdefghij"),
    )
    assert_imagekit_error(wrong, 403, forbidden)
    garbage = await uploads.post(
        V1, data={"fileName": "a.png"}, files=file_part(), headers={"Authorization": "Basic %%%"}
    )
    assert_imagekit_error(garbage, 403, forbidden)


async def test_missing_file(uploads: httpx.AsyncClient, private_key: str) -> None:
    """No file part: ImageKit's missing-file error."""
    response = await uploads.post(
        V1, data={"fileName": "a.png"}, files={"other": ("x", b"1")}, headers=basic(private_key)
    )
    assert_imagekit_error(response, 400, "Your request is missing file parameter.")


async def test_file_too_large(
    make_settings: Callable[..., Settings], storage_dir: Path, clock: FakeClock, private_key: str
) -> None:
    """Over the limit: ImageKit's size error, and nothing left on disk."""
    settings = make_settings(storage_dir=storage_dir, max_file_size="5kb")
    async with upload_client(settings, clock) as http:
        response = await http.post(
            V1,
            data={"fileName": "a.txt"},
            files=file_part(b"x" * 5121, "a.txt", "text/plain"),
            headers=basic(private_key),
        )
        ok = await http.post(
            V1,
            data={"fileName": "a.txt"},
            files=file_part(b"x" * 5120, "a.txt", "text/plain"),
            headers=basic(private_key),
        )
    assert_imagekit_error(
        response, 400, "Your request contains invalid file parameter. The file size exceeds limits."
    )
    assert ok.status_code == 200
    assert leftovers(storage_dir) == []
    assert len(list((storage_dir / "files").iterdir())) == 1


async def test_checks_are_honoured_in_v1(uploads: httpx.AsyncClient, private_key: str) -> None:
    """checks with bad syntax or a failing condition: ImageKit's two errors."""
    auth = basic(private_key)
    syntax = await uploads.post(
        V1, data={"fileName": "a.png", "checks": "file.size < 1"}, files=file_part(), headers=auth
    )
    assert_imagekit_error(
        syntax, 400, "Your request contains invalid syntax for the checks parameter."
    )
    failed = await uploads.post(
        V1,
        data={"fileName": "a.png", "checks": '"file.size" < 10'},
        files=file_part(),
        headers=auth,
    )
    assert_imagekit_error(failed, 400, "Your request failed 'checks' validation.")
    passed = await uploads.post(
        V1,
        data={"fileName": "a.png", "checks": '"file.mime" : image AND "file.size" < "1mb"'},
        files=file_part(),
        headers=auth,
    )
    assert passed.status_code == 200


async def test_overwrite_rules(uploads: httpx.AsyncClient, private_key: str) -> None:
    """Same name with overwrite and unique names off: ImageKit's clash error; on: version 2."""
    auth = basic(private_key)
    fixed = {"fileName": "logo.png", "useUniqueFileName": "false", "folder": "/brand"}
    first = await uploads.post(
        V1, data={**fixed, "overwriteFile": "false"}, files=file_part(), headers=auth
    )
    assert first.json()["filePath"] == "/brand/logo.png"
    clash = await uploads.post(
        V1, data={**fixed, "overwriteFile": "false"}, files=file_part(), headers=auth
    )
    assert_imagekit_error(
        clash,
        400,
        (
            "A file with the same name already exists at the exact location. We could not "
            "overwrite it because both overwriteFile and useUniqueFileName are set to false."
        ),
    )
    second = await uploads.post(V1, data=fixed, files=file_part(png(2, 2)), headers=auth)
    assert second.json()["fileId"] == first.json()["fileId"]
    assert second.json()["versionInfo"]["name"] == "Version 2"
    assert (await uploads.get("/files/brand/logo.png")).content == png(2, 2)


async def test_tags_metadata_and_response_fields(
    uploads: httpx.AsyncClient, private_key: str
) -> None:
    """tags, customMetadata, isPrivateFile come back when asked for with responseFields."""
    response = await uploads.post(
        V1,
        headers=basic(private_key),
        files=file_part(),
        data={
            "fileName": "a.png",
            "tags": "summer,dress",
            "customMetadata": json.dumps({"sku": 7}),
            "customCoordinates": "1,2,3,4",
            "isPrivateFile": "true",
            "responseFields": "tags,customMetadata,isPrivateFile,customCoordinates",
        },
    )
    body = response.json()
    assert body["tags"] == ["summer", "dress"]
    assert body["customMetadata"] == {"sku": 7}
    assert body["customCoordinates"] == "1,2,3,4"
    assert body["isPrivateFile"] is True
    assert (await uploads.get("/files/" + body["name"])).status_code == 401  # signed URLs only


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("useUniqueFileName", "yes"),
        ("folder", "/a b"),
        ("tags", "a%b"),
        ("customMetadata", "[1]"),
        ("customCoordinates", "1,2"),
        ("responseFields", "secrets"),
    ],
)
async def test_invalid_parameters(
    uploads: httpx.AsyncClient, private_key: str, field: str, value: str
) -> None:
    """A malformed optional parameter is a 400 naming it."""
    response = await uploads.post(
        V1, data={"fileName": "a.png", field: value}, files=file_part(), headers=basic(private_key)
    )
    assert_imagekit_error(response, 400, f"Your request contains invalid {field} parameter.")


async def test_real_type_decides(uploads: httpx.AsyncClient, private_key: str) -> None:
    """HTML named .png is refused; an .exe is refused; JPEG bytes named .png are a JPEG."""
    from tests.support.samples import jpeg

    auth = basic(private_key)
    html = await uploads.post(
        V1,
        data={"fileName": "x.png"},
        headers=auth,
        files=file_part(b"<html><script>alert(1)</script>", "x.png"),
    )
    assert_imagekit_error(
        html,
        400,
        "Your request contains invalid file parameter. The file's "
        "content does not match its extension.",
    )
    exe = await uploads.post(
        V1, data={"fileName": "x.exe"}, headers=auth, files=file_part(b"MZ\x90\x00", "x.exe")
    )
    assert exe.status_code == 400
    disguised = await uploads.post(
        V1, data={"fileName": "photo.png"}, headers=auth, files=file_part(jpeg(4, 4), "photo.png")
    )
    served = await uploads.get("/files/" + disguised.json()["name"])
    assert served.headers["content-type"] == "image/jpeg"


async def test_active_content_is_never_inline(uploads: httpx.AsyncClient, private_key: str) -> None:
    """An HTML or SVG upload is served as an attachment, sandboxed, with nosniff."""
    for name, data in (
        ("page.html", b"<script>alert(1)</script>"),
        ("icon.svg", b"<svg xmlns='http://www.w3.org/2000/svg' onload='x()'/>"),
    ):
        response = await uploads.post(
            V1,
            data={"fileName": name},
            headers=basic(private_key),
            files=file_part(data, name, "text/plain"),
        )
        served = await uploads.get("/files/" + response.json()["name"])
        assert served.headers["content-disposition"].startswith("attachment")
        assert "sandbox" in served.headers["content-security-policy"]
        assert served.headers["x-content-type-options"] == "nosniff"


async def test_base64_file_and_data_uri(uploads: httpx.AsyncClient, private_key: str) -> None:
    """file may be base64 text, plain or as a data URI; a URL is refused (nothing fetched)."""
    data = png(5, 5)
    encoded = base64.b64encode(data).decode()
    for value in (encoded, "data:image/png;base64," + encoded):
        response = await uploads.post(
            V1,
            data={"fileName": "b.png"},
            files={"file": (None, value.encode())},
            headers=basic(private_key),
        )
        assert response.status_code == 200, response.text
        assert (await uploads.get("/files/" + response.json()["name"])).content == data
    url = await uploads.post(
        V1,
        data={"fileName": "b.png"},
        files={"file": (None, b"http://127.0.0.1:9/x.png")},
        headers=basic(private_key),
    )
    assert url.status_code == 400  # a URL is fetched, but never from loopback unless allowed
    assert "not public" in url.json()["message"]


@pytest.mark.parametrize(
    ("name", "data", "status"),
    [
        ("raw.png", png(7, 3), 200),
        ("raw.png", png(1, 1)[:60] + bytes(range(256)) * 40, 200),
        ("raw.gif", b"GIF89a\x01", 200),
        ("raw.bin.txt", b"\x00\x01", 400),
    ],
    ids=["png", "png, long", "short gif", "two binary bytes as text"],
)
async def test_bytes_without_a_filename_are_the_file(
    uploads: httpx.AsyncClient, private_key: str, name: str, data: bytes, status: int
) -> None:
    """A file part without a filename holding the file's bytes, as imagekitio 4.x sends
    ``bytes``, is stored as sent (it used to be decoded as base64 and refused): a file of its
    extension's type is served back byte for byte; one that is not is refused for its
    content."""
    response = await uploads.post(
        V1,
        data={"fileName": name, "useUniqueFileName": "false"},
        files={"file": (None, data)},
        headers=basic(private_key),
    )
    assert response.status_code == status, response.text
    if status == 200:
        assert (await uploads.get("/files/" + response.json()["name"])).content == data
    else:
        assert response.json()["message"] == (
            "Your request contains invalid file parameter. The file's content does not match "
            "its extension."
        )


async def test_not_multipart(uploads: httpx.AsyncClient, private_key: str) -> None:
    """A JSON or truncated body is a 400 in ImageKit's shape, not a 500."""
    response = await uploads.post(V1, json={"fileName": "a.png"}, headers=basic(private_key))
    assert response.status_code == 400
    assert set(response.json()) == {"message", "help"}
    truncated = await uploads.post(
        V1,
        headers={**basic(private_key), "content-type": "multipart/form-data; boundary=xyz"},
        content=b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc',
    )
    assert truncated.status_code == 400


async def test_preflight_and_cors(
    make_settings: Callable[..., Settings], storage_dir: Path, clock: FakeClock
) -> None:
    """The browser SDK's preflight is answered for allowed origins only."""
    settings = make_settings(
        storage_dir=storage_dir, dev_mode=True, cors_origins=["http://app.test"]
    )
    async with upload_client(settings, clock) as http:
        allowed = await http.options(
            V1, headers={"Origin": "http://app.test", "Access-Control-Request-Method": "POST"}
        )
        denied = await http.options(
            V1, headers={"Origin": "http://evil.test", "Access-Control-Request-Method": "POST"}
        )
        error = await http.post(
            V1, headers={"Origin": "http://app.test"}, files=file_part(), data={"fileName": "a.png"}
        )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "http://app.test"
    assert "access-control-allow-origin" not in denied.headers
    assert error.status_code == 401
    assert error.headers["access-control-allow-origin"] == "http://app.test"


async def test_a_bug_answers_500_with_its_request_id(
    upload_settings: Settings,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An unexpected exception is a 500 that says nothing of the exception, carries the
    request's X-Request-ID and is in the access log with status 500."""

    async def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("SNEAKY internal detail")

    monkeypatch.setattr("app.upload_api.routes.uploads.upload", broken)
    app = create_upload_app(upload_settings, clock=clock)
    async with asgi_client(app, "http://upload.test", raise_app_exceptions=False) as http:
        response = await http.post(
            V1,
            files={"file": ("a.png", png())},
            data={"fileName": "a.png"},
            headers={"X-Request-ID": "bug-2"},
        )
        await asyncio.sleep(0)  # request lines go out at the end of the event loop's turn
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "bug-2"
    assert response.json() == {
        "message": "The upload API hit an unexpected error. Please retry.",
        "help": HELP,
    }
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "{" in line]
    access = [d for d in lines if d.get("logger") == "upload_auth.access"]
    assert [(d["request_id"], d["status"]) for d in access] == [("bug-2", 500)]
