"""The upload API's app factory. Run with ``upload-auth upload-api``."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Final, Literal, TypedDict, cast
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect

from app import delivery, errors, handlers
from app.clock import Clock, system_clock, unix_now
from app.config import Settings, load_settings
from app.handlers import NO_STORE, no_store
from app.imagekit.filetypes import ALLOWED
from app.imagekit.rules import parse_size
from app.keysource import KeySource
from app.ledger import Ledger, LedgerUnavailable, MemoryLedger
from app.logs import configure_logging, get_logger
from app.middleware import Fronted, RequestContext, cors
from app.schemas import Health
from app.upload_api import wire
from app.upload_api.fetch import RemoteFiles
from app.upload_api.storage import LocalStorage, StoredFile, is_active_content, new_id
from app.upload_api.uploads import THUMBNAIL_SEGMENT, InFlight, UploadContext, upload
from app.upload_api.workers import MediaWorkers
from app.webhooks.outbox import Outbox, RedisOutbox, SqliteOutbox
from app.webhooks.sender import WebhookMetrics, WebhookSender
from app.wiring import assemble, plan_limits, webhook_secret

log = get_logger("upload_api")

#: Served files can never run script on this origin, whatever they contain.
FILE_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cross-Origin-Resource-Policy": "cross-origin",
    "Cache-Control": "public, max-age=300",
}


#: An upload still in tmp/ after this long belongs to a process that died (no upload of a file
#: within the size limits takes an hour).
STALE_UPLOAD_SECONDS: Final = 3600


class State(TypedDict):
    settings: Settings
    upload: UploadContext
    registry: CollectorRegistry


def _webhooks(
    settings: Settings, secret: bytes | None, clock: Clock, metrics: WebhookMetrics
) -> WebhookSender | None:
    """The webhook sender the settings ask for, over Redis (shared by the replicas) or SQLite
    on the storage volume; None without ``webhook_url``."""
    if settings.webhook_url is None or secret is None:
        return None
    outbox: Outbox
    if settings.redis_url is not None:
        outbox = RedisOutbox(settings.redis_url.get_secret_value())
    else:
        outbox = SqliteOutbox(settings.storage_dir / "webhooks" / "outbox.sqlite3")
    return WebhookSender(
        outbox,
        settings.webhook_url,
        secret,
        clock=clock,
        metrics=metrics,
        timeout=settings.webhook_timeout,
        max_attempts=settings.webhook_max_attempts,
        retry_base=settings.webhook_retry_base,
    )


def own_ledger(settings: Settings, clock: Clock) -> Ledger:
    """The credential ledger the settings describe: Redis, or this process's memory."""
    if settings.redis_url is not None:
        from app.ledger.redis import RedisLedger

        return RedisLedger(settings.redis_url.get_secret_value())
    return MemoryLedger(clock)


router = APIRouter()


def _context(request: Request) -> UploadContext:
    return cast(UploadContext, request.state.upload)


def _base_url(request: Request) -> str:
    configured = cast(Settings, request.state.settings).public_url
    return (configured or str(request.base_url)).rstrip("/")


#: A refusal decided before the whole body was read is sent after reading (and discarding) the
#: rest, so that clients which write the whole body before they read the answer (Node's fetch,
#: SDKs built on it) get the answer instead of a broken pipe; bounded: only a body declared at
#: most this large, for at most ``DRAIN_SECONDS``. Anything else is answered at once and the
#: connection closed.
DRAIN_BYTES: Final = 64 * 1024 * 1024
DRAIN_SECONDS: Final = 10.0


class _Body:
    """The request body as chunks (Starlette's ``Request.stream``), knowing whether it has all
    arrived: a refusal decided at the last chunk has nothing left to drain."""

    def __init__(self, request: Request) -> None:
        self.receive = request.receive
        self.complete = False

    async def chunks(self) -> AsyncIterator[bytes]:
        while not self.complete:
            message = await self.receive()
            if message["type"] != "http.request":
                raise ClientDisconnect()
            self.complete = not message.get("more_body", False)
            chunk = message.get("body", b"")
            if chunk:
                yield chunk


async def _drain(request: Request, body: _Body) -> bool:
    """Read and discard the rest of a declared body; whether it was all read in time."""
    if body.complete:
        return True
    declared = request.headers.get("content-length", "")
    if not (declared.isascii() and declared.isdigit()) or int(declared) > DRAIN_BYTES:
        return False
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while True:
                message = await request.receive()
                if message["type"] != "http.request":
                    return False
                if not message.get("more_body", False):
                    return True
    except TimeoutError:
        return False


async def _upload(request: Request, version: Literal[1, 2]) -> JSONResponse:
    received = _Body(request)
    try:
        body = await upload(
            _context(request),
            version=version,
            content_type=request.headers.get("content-type"),
            content_length=request.headers.get("content-length"),
            authorization=request.headers.get("authorization"),
            body=received.chunks(),
            base_url=_base_url(request),
        )
    except ClientDisconnect:
        log.info("client went away mid-upload")
        raise wire.malformed_body() from None
    except wire.UploadError as refusal:
        if refusal.body_unread and await _drain(request, received):
            refusal.body_unread = False  # all read: the answer arrives, the connection stays
        raise
    log.info(
        "upload stored", extra={"version": version, "size": body["size"], "file_id": body["fileId"]}
    )
    return JSONResponse(body)


@router.post("/api/v1/files/upload")
async def upload_v1(request: Request) -> JSONResponse:
    """ImageKit v1: server-side (Basic auth) or client-side (signature) upload."""
    return await _upload(request, 1)


@router.post("/api/v2/files/upload")
async def upload_v2(request: Request) -> JSONResponse:
    """ImageKit v2: server-side (Basic auth) or client-side (JWT) upload."""
    return await _upload(request, 2)


@router.get("/files/{file_path:path}")
async def serve_file(request: Request, file_path: str) -> Response:
    """A stored file, with headers that keep active content inert. A private file only through
    a URL signed in ImageKit's scheme (``ik-t``, ``ik-s``): 401 when unsigned, tampered with or
    expired. Ranges (video seeking), ``ETag``/``Last-Modified`` and conditional requests."""
    context = _context(request)
    thumbnail = file_path.startswith(THUMBNAIL_SEGMENT + "/")
    if thumbnail:
        file_path = file_path.removeprefix(THUMBNAIL_SEGMENT)
    stored = context.storage.lookup("/" + file_path.removeprefix("/"))
    if stored is None:
        raise errors.NotFound()
    headers = dict(FILE_HEADERS)
    if stored.is_private_file:
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        relative = raw_path.decode("latin-1").split("/files/", 1)[-1]
        verdict = delivery.verify(
            context.keys.ring,
            relative,
            request.scope.get("query_string", b"").decode("latin-1"),
            unix_now(context.clock),
        )
        if verdict is not delivery.Verdict.VALID:
            raise _URL_REFUSALS[verdict]()
        headers["Cache-Control"] = "private, max-age=60"
    if thumbnail:
        path, media_type = await _thumbnail(context, stored)
        headers["ETag"] = f'"{stored.version_id}-thumbnail"'
    else:
        file_type = ALLOWED.get(stored.extension)
        if file_type is None or is_active_content(file_type):
            headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(stored.name)}"
        headers["ETag"] = f'"{stored.version_id}"'
        path, media_type = context.storage.content(stored), stored.mime
    if _not_modified(request, headers["ETag"], path):
        kept = ("ETag", "Cache-Control")
        return Response(status_code=304, headers={k: headers[k] for k in kept})
    return FileResponse(path, media_type=media_type, headers=headers)


async def _thumbnail(context: UploadContext, stored: StoredFile) -> tuple[Path, str]:
    """The stored file's thumbnail (WebP), made by a media worker on the first request and
    kept per version; 404 for a file of which none can be made."""
    file_type = ALLOWED.get(stored.extension)
    if file_type is None or not (stored.media or {}).get("thumbnail"):
        raise errors.NotFound()
    storage = context.storage
    kept = storage.thumbnail_path(stored)
    if not kept.exists():
        made = storage.work / f"thumbnail-{new_id()}.webp"
        try:
            if not await context.media.thumbnail(storage.content(stored), made, file_type.kind):
                raise errors.NotFound()
            storage.keep_thumbnail(made, kept)
        finally:
            made.unlink(missing_ok=True)
    return kept, "image/webp"


_URL_REFUSALS: Final = {
    delivery.Verdict.UNSIGNED: wire.unsigned_private_url,
    delivery.Verdict.INVALID: wire.invalid_url_signature,
    delivery.Verdict.EXPIRED: wire.expired_url,
}


def _not_modified(request: Request, etag: str, path: Path) -> bool:
    """Whether a conditional GET may be answered 304: ``If-None-Match`` names the current
    ``ETag`` (weakly compared), or else ``If-Modified-Since`` is not before the file's time."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or etag in tags
    since = request.headers.get("if-modified-since")
    if since is None:
        return False
    try:
        when = parsedate_to_datetime(since).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return False  # a date that cannot be read is ignored (RFC 9110)
    try:
        return int(path.stat().st_mtime) <= when
    except OSError:
        return False


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """The upload API's counters (webhook deliveries), in Prometheus' text format; public like
    the probes (restrict it at the network edge). 404 when metrics are off."""
    if not cast(Settings, request.state.settings).metrics_enabled:
        raise errors.NotFound()
    registry = cast(CollectorRegistry, request.state.registry)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/healthz",
    include_in_schema=False,
    response_model_exclude_none=True,
    dependencies=[Depends(no_store)],
)
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    include_in_schema=False,
    response_model_exclude_none=True,
    dependencies=[Depends(no_store)],
)
async def readyz(request: Request) -> Health:
    """Ready when the credential ledger answers (Redis, when configured). A ledger that lost
    its data is ready again (it begins a new epoch, logged at warning)."""
    context = _context(request)
    if not await context.ledger.ping(int(context.clock() * 1000)):
        raise errors.NotReady("the credential ledger does not answer")
    return Health(status="ready")


async def _on_upload_error(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, wire.UploadError):  # pragma: no cover - registered for it only
        raise exc
    # The reason, never the message: ImageKit's messages may repeat the client's token.
    log.info("upload refused", extra={"status": exc.status, "reason": exc.reason})
    headers = dict([NO_STORE])
    if exc.body_unread:
        headers["Connection"] = "close"
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


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
    source = assemble(settings, keys).keys
    limits = plan_limits(settings)
    ring = source.ring
    configure_logging(
        settings.log_format, settings.log_level, (p.private_key.decode() for p in ring)
    )
    storage = LocalStorage(settings.storage_dir)
    secret = webhook_secret(settings)
    registry = CollectorRegistry(auto_describe=True)
    webhook_metrics = WebhookMetrics(registry)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[State]:
        used = ledger if ledger is not None else own_ledger(settings, clock)
        try:
            await used.start(int(clock() * 1000))
        except LedgerUnavailable:
            log.warning("the credential ledger does not answer yet; uploads wait for it (503)")
        context = UploadContext(
            source,
            clock,
            used,
            storage,
            limits,
            accept_unbound_v1=settings.accept_unbound_v1 or settings.dev_mode,
            credential_ttl=settings.credential_ttl,
            in_flight=InFlight(settings.in_flight_limit),
            media=MediaWorkers(
                settings.media_workers,
                timeout=settings.media_timeout,
                memory=parse_size(settings.media_memory or 0),
            ),
            remote=RemoteFiles(settings.fetch_allow_networks, timeout=settings.fetch_timeout),
            events=_webhooks(settings, secret, clock, webhook_metrics),
            receipt_retention=settings.receipt_retention,
        )
        storage.claim()
        swept = storage.sweep(older_than=STALE_UPLOAD_SECONDS)
        log.info(
            "upload API ready",
            extra={
                "storage_dir": str(settings.storage_dir),
                "ledger": "redis" if settings.redis_url else "memory",
                "stale_uploads_removed": swept,
                "public_keys": [pair.public_key for pair in ring],
            },
        )
        if context.events is not None:
            context.events.start()
        try:
            async with source.watching():
                yield {"settings": settings, "upload": context, "registry": registry}
        finally:
            if context.events is not None:
                await context.events.stop()
            await context.media.close()
            await context.remote.close()
            storage.release()
            if ledger is None:
                await used.close()

    front = [Middleware(RequestContext, log_access=settings.access_log)]
    front += cors(settings.browser_origins, expose=["x-request-id"])
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
    handlers.install(app)
    app.add_exception_handler(wire.UploadError, _on_upload_error)
    app.include_router(router)
    return app
