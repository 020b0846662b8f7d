"""Apps in-process: key material made at run time, a clock tests move, settings in production
mode, and the one in-process client (lifespan included)."""

import secrets
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager
from starlette.types import ASGIApp

from app.core.settings import ApiKeyConfig, Settings
from app.credential_service.app import create_app
from app.credential_service.callers.api_keys import hash_api_key, new_api_key

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


@asynccontextmanager
async def asgi_client(
    app: ASGIApp,
    base_url: str,
    headers: dict[str, str] | None = None,
    *,
    raise_app_exceptions: bool = True,
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to an ASGI app in-process, lifespan included: the one way tests
    reach an app without a server. ``raise_app_exceptions=False`` lets a test see the 500 an
    unexpected error is answered with, as a client would."""
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(
            transport=transport, base_url=base_url, headers=headers
        ) as http:
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
        from app.core.settings import ProfileConfig

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
