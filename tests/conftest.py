"""Shared fixtures: key material generated per run, explicit settings, a controllable clock and
an in-process client that runs the app's lifespan."""

import os
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.types import ASGIApp

from app.callers.api_keys import hash_api_key, new_api_key
from app.config import ApiKeyConfig, KeyPairConfig, Settings
from app.main import create_app

START = 1_795_000_000  # a fixed "now" (2026-11-18), absolute Unix seconds


def new_private_key() -> str:
    """A fresh private key shaped like ImageKit's (``private_`` + 28+ characters)."""
    return "private_" + secrets.token_urlsafe(24)


def new_public_key() -> str:
    return "public_" + secrets.token_urlsafe(21)


class FakeClock:
    """The injectable clock, frozen until a test moves it."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees configuration from the machine's environment."""
    for name in list(os.environ):
        if name.startswith(("UPLOAD_AUTH_", "IMAGEKIT_", "IMAGE_KIT_")):
            monkeypatch.delenv(name)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def public_key() -> str:
    return new_public_key()


@pytest.fixture
def private_key() -> str:
    return new_private_key()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_settings(public_key: str, private_key: str) -> Callable[..., Settings]:
    """Settings with this test's key pair, in development mode unless told otherwise."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "public_key": public_key,
            "private_key": private_key,
            "dev_mode": True,
            "log_format": "json",
            # Limits are tested on their own; elsewhere they would only add noise.
            "rate_limit_v1": None,
            "rate_limit_v2": None,
            "quota_v2": None,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def other_pair() -> tuple[str, str]:
    """A second key pair (public, private), configured by ``two_pair_settings``."""
    return new_public_key(), new_private_key()


@pytest.fixture
def two_pair_settings(
    make_settings: Callable[..., Settings], other_pair: tuple[str, str]
) -> Settings:
    """This test's pair signs; ``other_pair`` is configured beside it."""
    return make_settings(keys=[KeyPairConfig(public_key=other_pair[0], private_key=other_pair[1])])


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@asynccontextmanager
async def asgi_client(
    app: ASGIApp, base_url: str, headers: dict[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to an ASGI app in-process, lifespan included."""
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url=base_url, headers=headers
        ) as http,
    ):
        yield http


#: The API key of the caller ``production`` settings authenticate (made at run time).
API_KEY: str = new_api_key()


def production(settings: Settings) -> Settings:
    """The same settings in production mode: callers authenticated by ``API_KEY`` (as
    ``backend``), every profile issuing v1 as development mode's profiles do."""
    profiles = {
        name: config
        if config.allow_v1 is not None
        else config.model_copy(update={"allow_v1": True})
        for name, config in settings.profiles.items()
    }
    if not profiles and settings.default_profile == "default":
        from app.config import ProfileConfig

        profiles = {"default": ProfileConfig(allow_v1=True)}
    callers = settings.callers
    if not callers.configured:
        callers = callers.model_copy(
            update={"api_keys": [ApiKeyConfig(name="backend", hash=hash_api_key(API_KEY))]}
        )
    return settings.model_copy(update={"dev_mode": False, "profiles": profiles, "callers": callers})


def caller_headers(settings: Settings) -> dict[str, str]:
    """What a client of ``production`` settings sends to be a caller (else nothing)."""
    ours = hash_api_key(API_KEY)
    if settings.dev_mode or all(k.hash != ours for k in settings.callers.api_keys):
        return {}
    return {"Authorization": f"Bearer {API_KEY}"}


def in_process(
    settings: Settings, clock: FakeClock
) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    """The credential service with these settings, in-process (as caller ``API_KEY`` when the
    settings are in production mode)."""
    return asgi_client(create_app(settings, clock=clock), "http://test", caller_headers(settings))


@pytest.fixture
async def client(settings: Settings, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    """The app with this test's settings, in-process."""
    async with in_process(settings, clock) as http:
        yield http


@pytest.fixture
def file_request() -> dict[str, Any]:
    return {"fileName": "cat.png", "fileSize": 48213, "mimeType": "image/png"}
