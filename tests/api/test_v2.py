"""POST /v2/token over HTTP (in-process): the JWT, its fields, and ImageKit's request shape."""

import json
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest

from app.core.settings import KeyPairConfig, ProfileConfig, Settings
from tests.support.apps import START, FakeClock, in_process, new_private_key, new_public_key

pytestmark = pytest.mark.anyio


def decode(token: str, private_key: str) -> dict[str, Any]:
    """Verify a JWT exactly as a third party with the private key would (PyJWT, HS256)."""
    return jwt.decode(
        token, private_key, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False}
    )


async def test_v2_token_and_fields(
    client: httpx.AsyncClient, file_request: dict[str, Any], public_key: str, private_key: str
) -> None:
    """The JWT verifies with the private key; its payload is the fields plus iat/exp."""
    response = await client.post("/v2/token", json=file_request)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"token", "expiresAt", "uploadUrl", "fields", "serverTime"}
    assert body["serverTime"] == START
    header = jwt.get_unverified_header(body["token"])
    assert header.keys() == {"alg", "typ", "kid", "nonce"}
    assert (header["alg"], header["typ"], header["kid"]) == ("HS256", "JWT", public_key)
    payload = decode(body["token"], private_key)
    fields = body["fields"]
    assert all(isinstance(v, str) for v in fields.values())
    assert {k: v for k, v in payload.items() if k not in ("iat", "exp")} == fields
    assert (payload["iat"], payload["exp"], body["expiresAt"]) == (
        START,
        START + 1800,
        START + 1800,
    )
    assert fields["fileName"] == "cat.png"
    assert fields["checks"] == '"file.size" <= 48213 AND "file.mime" = "image/png"'
    assert body["uploadUrl"] == "https://upload.imagekit.io/api/v2/files/upload"


async def test_tampered_jwt_fails_verification(
    client: httpx.AsyncClient, file_request: dict[str, Any], private_key: str
) -> None:
    """Changing a byte of the issued JWT's payload breaks its signature for any verifier."""
    token = (await client.post("/v2/token", json=file_request)).json()["token"]
    header, payload, signature = token.split(".")
    payload = payload[:5] + ("A" if payload[5] != "A" else "B") + payload[6:]
    with pytest.raises(jwt.InvalidTokenError):
        decode(f"{header}.{payload}.{signature}", private_key)
    with pytest.raises(jwt.InvalidSignatureError):
        decode(token, new_private_key())


@pytest.fixture
def avatar_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        profiles={
            "avatar": ProfileConfig(
                types=["png", "jpg", "jpeg"],
                max_size="1mb",
                folder="/users/{caller}/avatars",
                ttl=300,
                tags=["avatar"],
            ),
            "video": ProfileConfig(types=["mp4"], max_video_size="100mb"),
        },
        default_profile="avatar",
        plan="paid",
        upload_api_url="http://127.0.0.1:9000",
    )


async def test_profile_decides_folder_tags_ttl_and_limits(
    avatar_settings: Settings, clock: FakeClock, private_key: str
) -> None:
    """The profile's folder template, tags, TTL and size cap shape the token."""
    async with in_process(avatar_settings, clock) as http:
        ok = await http.post(
            "/v2/token",
            json={"fileName": "me.jpg", "fileSize": 1024 * 1024, "mimeType": "image/jpeg"},
        )
        big = await http.post(
            "/v2/token",
            json={"fileName": "me.jpg", "fileSize": 1024 * 1024 + 1, "mimeType": "image/jpeg"},
        )
        video = await http.post(
            "/v2/token",
            json={
                "fileName": "a.mp4",
                "fileSize": 90 * 2**20,
                "mimeType": "video/mp4",
                "profile": "video",
            },
        )
    body = ok.json()
    caller = "dev-dev" if avatar_settings.dev_mode else "key-backend"  # the caller's own folder
    assert body["fields"]["folder"] == f"/users/{caller}/avatars"
    assert body["fields"]["tags"] == "avatar"
    assert body["uploadUrl"] == "http://127.0.0.1:9000/api/v2/files/upload"
    payload = decode(body["token"], private_key)
    assert payload["exp"] - payload["iat"] == 300
    assert big.status_code == 422
    assert big.json()["type"] == "/problems/file-too-large"
    assert video.status_code == 200


async def test_imagekit_request_shape(
    client: httpx.AsyncClient, public_key: str, private_key: str
) -> None:
    """{uploadPayload, expire, publicKey} gets a token; fields say what to send."""
    response = await client.post(
        "/v2/token",
        json={
            "uploadPayload": {"fileName": "dress.jpg", "tags": "summer,dress"},
            "expire": 400,
            "publicKey": public_key,
        },
    )
    assert response.status_code == 200
    body = response.json()
    payload = decode(body["token"], private_key)
    assert payload["exp"] - payload["iat"] == 400
    assert payload["tags"] == "summer,dress"
    assert "checks" in payload
    assert {k: v for k, v in payload.items() if k not in ("iat", "exp")} == body["fields"]


async def test_imagekit_shape_selects_another_pair(
    make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    """publicKey in ImageKit's shape picks the pair; the JWT's kid says which."""
    other_public, other_private = new_public_key(), new_private_key()
    settings = make_settings(
        keys=[KeyPairConfig(public_key=other_public, private_key=other_private)]
    )
    async with in_process(settings, clock) as http:
        response = await http.post(
            "/v2/token",
            json={"uploadPayload": {"fileName": "a.png"}, "expire": 60, "publicKey": other_public},
        )
    token = response.json()["token"]
    assert jwt.get_unverified_header(token)["kid"] == other_public
    decode(token, other_private)


async def test_imagekit_shape_never_signs_longer_than_the_profile(
    client: httpx.AsyncClient, private_key: str
) -> None:
    """A requested expire above the configured TTL is cut to the TTL."""
    response = await client.post(
        "/v2/token", json={"uploadPayload": {"fileName": "a.png"}, "expire": 3599}
    )
    payload = decode(response.json()["token"], private_key)
    assert payload["exp"] - payload["iat"] == 1800


@pytest.mark.parametrize(
    "headers", [{}, {"Content-Type": "text/plain"}, {"Content-Type": "multipart/form-data"}]
)
async def test_a_body_not_declared_json_is_415_and_spends_nothing(
    make_settings: Callable[..., Settings], clock: FakeClock, headers: dict[str, str]
) -> None:
    """A body a cross-site page can send without a CORS preflight (no type, text/plain,
    form data) is refused with 415 before the caller's budgets are touched: a JSON request
    afterwards still has the whole 1/minute budget."""
    settings = make_settings(rate_limit_v2="1/minute")
    body = json.dumps({"fileName": "a.png", "fileSize": 1, "mimeType": "image/png"}).encode()
    async with in_process(settings, clock) as http:
        refused = await http.post("/v2/token", content=body, headers=headers)
        accepted = await http.post(
            "/v2/token", content=body, headers={"Content-Type": "application/json"}
        )
    assert refused.status_code == 415
    assert refused.json()["type"] == "/problems/unsupported-media-type"
    assert accepted.status_code == 200
