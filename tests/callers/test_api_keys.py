"""API-key callers: hashed keys, constant-time match, names as caller ids, profile lists."""

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from app.core.settings import ApiKeyConfig, CallersConfig, ProfileConfig, Settings
from tests.support.apps import FakeClock, in_process

pytestmark = pytest.mark.anyio

FILE = {"fileName": "cat.png", "fileSize": 100, "mimeType": "image/png"}


@pytest.fixture
async def service(
    make_settings: Callable[..., Settings], api_key_hash: str, clock: FakeClock
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        dev_mode=False,
        callers=CallersConfig(
            api_keys=[ApiKeyConfig(name="backend", hash=api_key_hash, profiles=["avatar"])]
        ),
        profiles={
            "avatar": ProfileConfig(folder="/users/{caller}", allow_v1=True),
            "internal": ProfileConfig(),
        },
        default_profile="avatar",
    )
    async with in_process(settings, clock) as http:
        yield http


async def test_a_configured_key_is_a_caller(service: httpx.AsyncClient, api_key: str) -> None:
    """The key's name, in the key namespace, is the caller: it fills the folder template."""
    auth = {"Authorization": f"Bearer {api_key}"}
    assert (await service.get("/v1/auth", headers=auth)).status_code == 200
    response = await service.post("/v2/token", json=FILE, headers=auth)
    assert response.json()["fields"]["folder"] == "/users/key-backend"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer uak_not-a-real-key"},
        {"Authorization": "Bearer something-else"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": "bearer  "},
    ],
)
async def test_anything_else_is_401(service: httpx.AsyncClient, headers: dict[str, str]) -> None:
    """No key, a wrong key, another scheme: 401 with WWW-Authenticate, nothing more said."""
    response = await service.get("/v1/auth", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="upload-auth"'
    assert response.json()["type"] == "/problems/unauthenticated"
    assert "detail" not in response.json()


async def test_lowercase_scheme_and_key_case(service: httpx.AsyncClient, api_key: str) -> None:
    """The scheme is case-insensitive; the key is not."""
    assert (
        await service.get("/v1/auth", headers={"Authorization": f"bearer {api_key}"})
    ).status_code == 200
    assert (
        await service.get("/v1/auth", headers={"Authorization": f"Bearer {api_key.upper()}"})
    ).status_code == 401


@pytest.mark.parametrize("profile", ["internal", "no-such-profile"])
async def test_profiles_outside_the_list_are_403_alike(
    service: httpx.AsyncClient, api_key: str, profile: str
) -> None:
    """A profile the caller may not use is 403, whether or not it exists (no enumeration)."""
    response = await service.post(
        "/v2/token",
        json={**FILE, "profile": profile},
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert response.status_code == 403
    assert response.json()["type"] == "/problems/forbidden"
