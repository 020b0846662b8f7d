"""POST /api/v2/files/upload in-process: the JWT, the payload match, the file checks."""

import base64
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from app.core.keys import KeyPair
from app.core.settings import Settings
from tests.support.apps import FakeClock, new_private_key, new_public_key
from tests.support.samples import png
from tests.support.uploads import (
    V2,
    assert_imagekit_error,
    basic,
    file_part,
    upload_client,
    v2_fields,
)

pytestmark = pytest.mark.anyio

INVALID_PAYLOAD = (
    "Your request contains invalid payload. It does not match with the payload "
    "used to generate token."
)
CHECKS_FAILED = "Your request failed 'checks' validation."


async def test_jwt_upload_with_the_issued_fields(
    uploads: httpx.AsyncClient, pair: KeyPair, clock: FakeClock
) -> None:
    """The fields and token the policy issues upload as they are."""
    data = png()
    response = await uploads.post(V2, data=v2_fields(pair, clock, data), files=file_part(data))
    assert response.status_code == 200, response.text
    assert (await uploads.get("/files" + response.json()["filePath"])).content == data


@pytest.mark.parametrize(
    "change",
    [
        {"fileName": "other.png"},
        {"folder": "/elsewhere"},
        {"useUniqueFileName": "false"},
        {"overwriteFile": "true"},
        {"tags": "extra"},
        {"checks": '"file.size" > 0'},
    ],
)
async def test_any_changed_or_extra_field_is_invalid_payload(
    uploads: httpx.AsyncClient, pair: KeyPair, clock: FakeClock, change: dict[str, str]
) -> None:
    """A field changed or added after signing: ImageKit's invalid-payload error."""
    data = png()
    fields = {**v2_fields(pair, clock, data), **change}
    assert_imagekit_error(
        await uploads.post(V2, data=fields, files=file_part(data)), 400, INVALID_PAYLOAD
    )


async def test_a_dropped_field_is_invalid_payload(
    uploads: httpx.AsyncClient, pair: KeyPair, clock: FakeClock
) -> None:
    """Leaving out a signed field (such as checks) is a mismatch too."""
    data = png()
    fields = v2_fields(pair, clock, data)
    del fields["checks"]
    assert_imagekit_error(
        await uploads.post(V2, data=fields, files=file_part(data)), 400, INVALID_PAYLOAD
    )


async def test_bigger_file_or_other_type_fails_checks(
    uploads: httpx.AsyncClient, pair: KeyPair, clock: FakeClock
) -> None:
    """The token pins size and type: a bigger file or another type fails 'checks'."""
    declared = png(2, 2)
    bigger = await uploads.post(
        V2, data=v2_fields(pair, clock, declared), files=file_part(png(30, 30))
    )
    assert_imagekit_error(bigger, 400, CHECKS_FAILED)
    from tests.support.samples import jpeg

    other = jpeg()
    fields = v2_fields(pair, clock, other + b"\x00" * 100)  # declared image/png, large enough
    assert_imagekit_error(
        await uploads.post(V2, data=fields, files=file_part(other)), 400, CHECKS_FAILED
    )


async def test_token_is_single_use(
    uploads: httpx.AsyncClient, pair: KeyPair, clock: FakeClock
) -> None:
    """A JWT is burned on first use, even when that upload fails."""
    data = png()
    fields = v2_fields(pair, clock, data)
    failed = await uploads.post(V2, data={**fields, "fileName": "x.png"}, files=file_part(data))
    assert_imagekit_error(failed, 400, INVALID_PAYLOAD)
    again = await uploads.post(V2, data=fields, files=file_part(data))
    assert again.status_code == 400
    assert "has been used before" in again.json()["message"]


async def test_a_token_written_another_way_is_not_another_use(
    uploads: httpx.AsyncClient, pair: KeyPair, clock: FakeClock
) -> None:
    """The same JWT with base64's padding on its signature (which PyJWT reads as the same
    token) is refused, so one credential never stores two files."""
    data = png()
    fields = v2_fields(pair, clock, data)
    assert (await uploads.post(V2, data=fields, files=file_part(data))).status_code == 200
    padded = {**fields, "token": fields["token"] + "="}
    assert_imagekit_error(
        await uploads.post(V2, data=padded, files=file_part(data)),
        400,
        "Your request has invalid token.",
    )


async def test_expired_token(uploads: httpx.AsyncClient, pair: KeyPair, clock: FakeClock) -> None:
    """Past exp (and the leeway): ImageKit's expired-token error."""
    data = png()
    fields = v2_fields(pair, clock, data, ttl=60)
    clock.advance(60 + 31)
    assert_imagekit_error(
        await uploads.post(V2, data=fields, files=file_part(data)),
        400,
        "Your request contains expired token.",
    )


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b.c",
        "",
        # A header of 30,000 nested arrays, read before any signature: not a 500.
        base64.urlsafe_b64encode(b"[" * 30_000).rstrip(b"=").decode() + ".e30.AAAA",
    ],
)
async def test_invalid_or_missing_token(
    uploads: httpx.AsyncClient, pair: KeyPair, clock: FakeClock, token: str
) -> None:
    """Not a JWT: invalid token; no token: missing token."""
    fields = {**v2_fields(pair, clock, png()), "token": token}
    expected = (
        "Your request is missing token parameter."
        if not token
        else "Your request has invalid token."
    )
    assert_imagekit_error(await uploads.post(V2, data=fields, files=file_part()), 400, expected)


async def test_token_from_another_account_is_invalid(
    uploads: httpx.AsyncClient, clock: FakeClock
) -> None:
    """A JWT signed with a key pair this upload API does not know: invalid token."""
    stranger = KeyPair(new_public_key(), new_private_key().encode())
    fields = v2_fields(stranger, clock, png())
    assert_imagekit_error(
        await uploads.post(V2, data=fields, files=file_part()),
        400,
        "Your request has invalid token.",
    )


async def test_token_and_basic_auth(
    uploads: httpx.AsyncClient, pair: KeyPair, clock: FakeClock, private_key: str
) -> None:
    """A JWT and Basic auth together: ImageKit's v2 'both' error."""
    response = await uploads.post(
        V2, data=v2_fields(pair, clock, png()), files=file_part(), headers=basic(private_key)
    )
    assert_imagekit_error(
        response,
        400,
        (
            "Your request contains both token and basic auth parameter. Use only one method, you "
            "might be exposing your private API key."
        ),
    )


async def test_server_side_v2(uploads: httpx.AsyncClient, private_key: str) -> None:
    """v2 with Basic auth needs no token (server-side upload)."""
    response = await uploads.post(
        V2, data={"fileName": "a.png"}, files=file_part(), headers=basic(private_key)
    )
    assert response.status_code == 200


async def test_redis_down_refuses_uploads(
    make_settings: Callable[..., Settings], storage_dir: Path, pair: KeyPair, clock: FakeClock
) -> None:
    """With Redis configured but unreachable, a credential is never accepted: 503."""
    from tests.support.servers import free_port

    settings = make_settings(
        storage_dir=storage_dir, redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    async with upload_client(settings, clock) as http:
        response = await http.post(V2, data=v2_fields(pair, clock, png()), files=file_part())
        ready = await http.get("/readyz")
    assert response.status_code == 503
    assert set(response.json()) == {"message", "help"}
    assert ready.status_code == 503
    assert list((storage_dir / "files").iterdir()) == []
