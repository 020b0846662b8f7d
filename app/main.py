"""The credential service's app factory. Nothing here runs at import time.

Run with ``upload-auth serve`` (or ``uvicorn --factory app.main:create_app``).
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import handlers, openapi
from app.callers import Authenticator, DevelopmentAuthenticator
from app.clock import Clock, system_clock
from app.config import Settings, load_settings
from app.deps import State
from app.keys import KeyRing
from app.logs import configure_logging, get_logger
from app.middleware import BodyLimit, RequestContext
from app.routes import health, v1, v2

log = get_logger("service")

DEV_BANNER = (
    "DEVELOPMENT MODE: every caller is accepted without authentication%s. "
    "Never run this in production."
)


def authenticators(settings: Settings) -> tuple[Authenticator, ...]:
    """The caller-authentication chain the settings describe."""
    chain: list[Authenticator] = []
    if settings.dev_mode:
        chain.append(DevelopmentAuthenticator())
    return tuple(chain)


def create_app(
    settings: Settings | None = None,
    *,
    keys: KeyRing | None = None,
    clock: Clock = system_clock,
) -> FastAPI:
    """Build the credential service. ``keys`` defaults to the settings' key ring."""
    settings = settings or load_settings()
    settings.require_caller_auth()
    ring = keys or settings.key_ring()
    policy = settings.policy()
    configure_logging(settings.log_format, settings.log_level)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[State]:
        if settings.dev_mode:
            generated = (
                ""
                if settings.public_key or settings.keys
                else (" and the key pair is a throwaway one generated at start-up")
            )
            log.warning(DEV_BANNER, generated)
        log.info(
            "credential service ready",
            extra={
                "public_keys": [pair.public_key for pair in ring],
                "signing_key": ring.signing.public_key,
                "profiles": sorted(policy.profiles),
            },
        )
        yield {
            "settings": settings,
            "keys": ring,
            "policy": policy,
            "clock": clock,
            "authenticators": authenticators(settings),
        }

    app = FastAPI(
        title="upload-auth",
        version="0.1.0",
        description="Short-lived upload credentials for ImageKit-compatible upload APIs.",
        lifespan=lifespan,
        docs_url="/docs" if settings.openapi_enabled else None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.openapi_enabled else None,
    )
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(RequestContext, log_access=settings.access_log)
    handlers.install(app)
    openapi.install(app)
    app.include_router(health.router)
    app.include_router(v1.router)
    app.include_router(v2.router)
    return app
