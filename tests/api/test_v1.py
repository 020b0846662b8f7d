"""GET /v1/auth and GET /auth over HTTP (in-process)."""

import re
import uuid
from collections.abc import Callable

import httpx
import pytest
from imagekitio import ImageKit

from app.core.settings import Settings
from tests.support.apps import START, FakeClock, in_process

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("path", ["/v1/auth", "/auth", "/v1/auth?t=0.123"])
async def test_v1_shape_and_headers(
    client: httpx.AsyncClient, path: str, public_key: str, private_key: str
) -> None:
    """The answer is {token, expire, signature, publicKey}, not cacheable, and verifies."""
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"token", "expire", "signature", "publicKey", "serverTime"}
    assert body["serverTime"] == START
    assert uuid.UUID(body["token"]).version == 4
    assert body["expire"] == START + 1800
    assert body["publicKey"] == public_key
    assert re.fullmatch(r"[0-9a-f]{40}", body["signature"])
    official = ImageKit(private_key=private_key).helper.get_authentication_parameters(
        token=body["token"], expire=body["expire"]
    )
    assert official["signature"] == body["signature"]


async def test_v1_expire_follows_the_clock_and_ttl(
    make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    """expire is absolute Unix seconds: now + the configured TTL."""
    async with in_process(make_settings(credential_ttl=600), clock) as http:
        first = (await http.get("/v1/auth")).json()["expire"]
        clock.advance(61.9)
        second = (await http.get("/v1/auth")).json()["expire"]
    assert (first, second) == (START + 600, START + 661)


async def test_v1_ten_thousand_calls_are_unique_and_in_window(
    client: httpx.AsyncClient, clock: FakeClock, private_key: str
) -> None:
    """10,000 credentials: every token distinct, every expire within (now, now + 3600)."""
    helper = ImageKit(private_key=private_key).helper
    tokens = set()
    for i in range(10_000):
        clock.advance(0.01)
        body = (await client.get("/v1/auth")).json()
        tokens.add(body["token"])
        assert clock.now < body["expire"] < clock.now + 3600
        if i % 997 == 0:
            assert (
                helper.get_authentication_parameters(token=body["token"], expire=body["expire"])[
                    "signature"
                ]
                == body["signature"]
            )
    assert len(tokens) == 10_000


async def test_v1_public_key_selects_a_configured_pair(
    two_pair_settings: Settings, other_pair: tuple[str, str], clock: FakeClock
) -> None:
    """?publicKey= picks another configured pair; an unknown one is a 422 unknown-key."""
    other_public, other_private = other_pair
    async with in_process(two_pair_settings, clock) as http:
        body = (await http.get("/v1/auth", params={"publicKey": other_public})).json()
        unknown = await http.get("/v1/auth", params={"publicKey": "public_nope"})
    assert body["publicKey"] == other_public
    assert (
        ImageKit(private_key=other_private).helper.get_authentication_parameters(
            token=body["token"], expire=body["expire"]
        )["signature"]
        == body["signature"]
    )
    assert unknown.status_code == 422
    assert unknown.json()["type"] == "/problems/unknown-key"


async def test_no_v1_credential_without_its_grant_recorded(
    make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    """With our upload API as the target and Redis unreachable, /v1/auth answers 503 with
    Retry-After: a credential whose grant cannot be recorded would be refused at upload."""
    from tests.support.servers import free_port

    settings = make_settings(
        redis_url=f"redis://127.0.0.1:{free_port()}/0", upload_api_url="http://uploads.test"
    )
    async with in_process(settings, clock) as http:
        response = await http.get("/v1/auth")
        v2 = await http.post(
            "/v2/token", json={"fileName": "a.png", "fileSize": 1, "mimeType": "image/png"}
        )
    assert response.status_code == 503
    assert response.json()["type"] == "/problems/ledger-unavailable"
    assert response.headers["retry-after"] == "2"
    assert v2.status_code == 200  # v2 needs no record: its grant is signed into the token


async def test_a_profile_that_has_not_opted_in_refuses_v1(
    make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    """Outside development mode the built-in profile does not issue v1; the problem names the
    setting that opts in."""
    from app.core.settings import ApiKeyConfig, CallersConfig

    key = "uak_" + "a" * 43
    import hashlib

    settings = make_settings(
        dev_mode=False,
        callers=CallersConfig(
            api_keys=[
                ApiKeyConfig(name="b", hash="sha256:" + hashlib.sha256(key.encode()).hexdigest())
            ]
        ),
    )
    async with in_process(settings, clock) as http:
        response = await http.get("/v1/auth", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 403
    body = response.json()
    assert body["type"] == "/problems/v1-not-allowed"
    assert "[profiles.default]" in body["detail"]


async def test_development_mode_sends_slash_to_the_demo(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """A newcomer opening the service's address lands on the demo page (development mode);
    in production there is no page there."""
    response = await client.get("/")
    if settings.dev_mode:
        assert response.status_code == 307
        assert response.headers["location"] == "/demo/"
    else:
        assert response.status_code == 404
        assert (await client.get("/demo/")).status_code == 404
