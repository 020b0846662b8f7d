"""One identity per caller: an API key, an identity provider's user and an app session that all
call themselves ``alice`` are three callers, with three folders; only an operator who gives two
methods one namespace makes their users one."""

from collections.abc import Callable

import httpx
import pytest

from app.core.settings import (
    ApiKeyConfig,
    CallersConfig,
    ForwardAuthConfig,
    IdpConfig,
    ProfileConfig,
    Settings,
)
from app.credential_service.callers.api_keys import hash_api_key, new_api_key
from tests.support.apps import START, FakeClock, in_process
from tests.support.idp import AUDIENCE, ISSUER
from tests.support.upstreams import SigningKey, Upstream

pytestmark = pytest.mark.anyio

FILE = {"fileName": "me.png", "fileSize": 100, "mimeType": "image/png"}
ALICE_KEY = new_api_key()


def three_alices(
    make: Callable[..., Settings], upstream: Upstream, *, idp_namespace: str = "idp"
) -> Settings:
    """An API key named alice, provider tokens for sub alice, and the app's session alice."""
    return make(
        dev_mode=False,
        callers=CallersConfig(
            api_keys=[ApiKeyConfig(name="alice", hash=hash_api_key(ALICE_KEY))],
            idp=IdpConfig(
                jwks_url=upstream.url + "/jwks.json",
                issuer=ISSUER,
                audience=AUDIENCE,
                timeout=1,
                namespace=idp_namespace,
            ),
            forward=ForwardAuthConfig(url=upstream.url + "/session", timeout=1),
        ),
        profiles={"own": ProfileConfig(folder="/users/{caller}", private=True)},
        default_profile="own",
        upload_api_url="http://upload.test",
    )


def as_each(keys: dict[str, SigningKey]) -> dict[str, dict[str, str]]:
    """The request headers of each alice."""
    token = keys["ES256"].sign(
        {"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "iat": START, "exp": START + 300}
    )
    return {
        "key": {"Authorization": f"Bearer {ALICE_KEY}"},
        "idp": {"Authorization": f"Bearer {token}"},
        "session": {"Cookie": "session=alice"},
    }


async def folders(http: httpx.AsyncClient, callers: dict[str, dict[str, str]]) -> list[str]:
    answers = [await http.post("/v2/token", json=FILE, headers=h) for h in callers.values()]
    assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
    return [a.json()["fields"]["folder"] for a in answers]


async def test_the_same_id_from_three_methods_is_three_callers(
    make_settings: Callable[..., Settings],
    upstream: Upstream,
    clock: FakeClock,
    provider_keys: dict[str, SigningKey],
) -> None:
    """Each alice uploads into a folder of her own and gets signed URLs only for it."""
    upstream.publish(*provider_keys.values())
    callers = as_each(provider_keys)
    async with in_process(three_alices(make_settings, upstream), clock) as http:
        assert await folders(http, callers) == [
            "/users/key-alice",
            "/users/idp-alice",
            "/users/session-alice",
        ]
        for mine, headers in callers.items():
            for theirs in callers:
                asked = await http.post(
                    "/v1/signed-url",
                    json={"path": f"/users/{theirs}-alice/report.pdf"},
                    headers=headers,
                )
                assert asked.status_code == (200 if mine == theirs else 403), asked.text


async def test_one_namespace_for_two_methods_makes_their_users_one(
    make_settings: Callable[..., Settings],
    upstream: Upstream,
    clock: FakeClock,
    provider_keys: dict[str, SigningKey],
) -> None:
    """The operator gives the provider the sessions' namespace: the same person signing in
    either way has one folder; the API key stays apart."""
    upstream.publish(*provider_keys.values())
    settings = three_alices(make_settings, upstream, idp_namespace="session")
    async with in_process(settings, clock) as http:
        assert await folders(http, as_each(provider_keys)) == [
            "/users/key-alice",
            "/users/session-alice",
            "/users/session-alice",
        ]
