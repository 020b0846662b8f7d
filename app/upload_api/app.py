"""The upload API's app factory. Run with ``upload-auth upload-api``.

Every answer that is not a success is ImageKit's error body (``{"message", "help"}``) with
ImageKit's status codes, on every path, unknown ones included: the official SDKs parse them.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final, TypedDict

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware

from app.core import parts as shared
from app.core.clock import Clock, now_ms, system_clock
from app.core.http import probes
from app.core.http.middleware import Fronted, RequestContext, cors
from app.core.keysource import KeySource
from app.core.ledger import Ledger, LedgerUnavailable
from app.core.logs import configure_logging, get_logger
from app.core.settings import Settings, load_settings
from app.core.webhooks.sender import WebhookMetrics
from app.upload_api import messages, parts
from app.upload_api.context import UploadContext
from app.upload_api.routes import files
from app.upload_api.routes.readiness import readiness
from app.upload_api.routes.refusals import refusal_response
from app.upload_api.routes.uploads import UploadRoutes

log = get_logger("upload_api")

#: An upload still in tmp/ after this long belongs to a process that died (no upload of a file
#: within the size limits takes an hour).
STALE_UPLOAD_SECONDS: Final = 3600


class State(TypedDict):
    settings: Settings
    upload: UploadContext


def create_upload_app(
    settings: Settings | None = None,
    *,
    keys: KeySource | None = None,
    clock: Clock = system_clock,
    ledger: Ledger | None = None,
) -> FastAPI:
    """Build the upload API. ``keys`` defaults to the settings' key ring; ``ledger`` to Redis
    when configured, else this process's memory (pass the credential service's when both
    share a process)."""
    settings = settings or load_settings()
    source = shared.keys(settings, keys)
    ring = source.ring
    configure_logging(
        settings.log_format, settings.log_level, (p.private_key.decode() for p in ring)
    )
    storage = parts.storage(settings)
    secret = shared.webhook_secret(settings)
    registry = CollectorRegistry(auto_describe=True)
    webhook_metrics = WebhookMetrics(registry)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[State]:
        used = parts.ledger(settings, clock, ledger)
        try:
            await used.start(now_ms(clock))
        except LedgerUnavailable:
            log.warning("the credential ledger does not answer yet; uploads wait for it (503)")
        events = parts.webhooks(settings, secret, clock, webhook_metrics, storage)
        context = parts.context(settings, source, clock, used, storage, events)
        swept = await storage.start(STALE_UPLOAD_SECONDS)
        if settings.storage_backend == "s3" and settings.redis_url is None and ledger is None:
            log.warning(
                "files go to a bucket, but the credential ledger is this process's memory: "
                "run one replica only, or set UPLOAD_AUTH_REDIS_URL (replicas that do not "
                "share a ledger each accept a credential once)"
            )
        log.info(
            "upload API ready",
            extra={
                "storage": settings.storage_backend,
                "storage_dir": str(settings.storage_dir),
                "ledger": "redis" if settings.redis_url else "memory",
                "stale_uploads_removed": swept,
                "public_keys": [pair.public_key for pair in ring],
            },
        )
        if events is not None:
            events.start()
        try:
            async with source.watching():
                yield {"settings": settings, "upload": context}
        finally:
            if events is not None:
                await events.stop()
            await context.media.close()
            await context.remote.close()
            await storage.stop()
            if used is not ledger:
                await used.close()

    front = [Middleware(RequestContext, log_access=settings.access_log)]
    front += cors(settings.browser_origins, expose=["x-request-id"])
    front += [Middleware(UploadRoutes), Middleware(files.FileRoutes)]
    app = Fronted(
        front,
        title="upload-auth upload API",
        lifespan=lifespan,
        # No OpenTelemetry here: FastAPI's native hooks would be asked on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    _install_errors(app)
    app.include_router(probes.router(readiness, registry if settings.metrics_enabled else None))
    return app


async def _on_upload_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, messages.UploadError)  # noqa: S101 - registered for it only
    return refusal_response(exc)


async def _on_http(_: Request, exc: Exception) -> JSONResponse:
    """The framework's own refusals (no such route, wrong method), in ImageKit's shape."""
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for it only
    if exc.status_code == 405:
        return refusal_response(messages.method_not_allowed())
    if exc.status_code == 404:
        return refusal_response(messages.no_such_route())
    return refusal_response(messages.malformed_body())


async def _on_unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=(type(exc), exc, exc.__traceback__))
    return refusal_response(messages.internal_error())


def _install_errors(app: FastAPI) -> None:
    app.add_exception_handler(messages.UploadError, _on_upload_error)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)
