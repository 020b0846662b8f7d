"""From validated settings to the upload API's running parts: storage, the ledger, the media
workers, URL fetching and the webhook sender. ``create_upload_app`` calls these; the parts both
apps share (keys, limits, the ledger) come from ``app.core.parts``."""

from functools import partial

from app.core import parts as shared
from app.core.clock import Clock
from app.core.keysource import KeySource
from app.core.ledger import Ledger, MemoryLedger
from app.core.settings import Settings
from app.core.webhooks.sender import WebhookMetrics, WebhookSender
from app.upload_api.admission import InFlight
from app.upload_api.context import UploadContext
from app.upload_api.fetch import RemoteFiles
from app.upload_api.report import recover_events
from app.upload_api.storage import LocalStorage, Storage
from app.upload_api.workers import MediaWorkers


def storage(settings: Settings) -> Storage:
    """Where files are stored: the storage directory (the default), or an S3-compatible bucket
    with the directory as the spool."""
    return LocalStorage(settings.storage_dir)


def ledger(settings: Settings, clock: Clock, given: Ledger | None) -> Ledger:
    """The shared credential ledger, or, with no Redis, this process's memory (one replica)."""
    found = shared.shared_ledger(settings, given)
    return MemoryLedger(clock) if found is None else found


def webhooks(
    settings: Settings,
    secret: bytes | None,
    clock: Clock,
    metrics: WebhookMetrics,
    storage: Storage,
) -> WebhookSender | None:
    """The webhook sender, over Redis (shared by the replicas) or SQLite on the storage volume,
    refilling a Redis outbox that lost its data from the stored files; None when no webhook is
    configured (``secret`` is None exactly then: ``webhook_secret``)."""
    if secret is None or settings.webhook_url is None:
        return None
    return WebhookSender(
        shared.webhook_outbox(settings),
        settings.webhook_url,
        secret,
        clock=clock,
        metrics=metrics,
        timeout=settings.webhook_timeout,
        max_attempts=settings.webhook_max_attempts,
        retry_base=settings.webhook_retry_base,
        spool=shared.webhook_spool(settings),
        refill=partial(recover_events, storage),
    )


def context(
    settings: Settings,
    keys: KeySource,
    clock: Clock,
    used: Ledger,
    storage: Storage,
    events: WebhookSender | None,
) -> UploadContext:
    """Everything an upload works with."""
    return UploadContext(
        keys,
        clock,
        used,
        storage,
        shared.plan_limits(settings),
        accept_unbound_v1=settings.accept_unbound_v1 or settings.dev_mode,
        credential_ttl=settings.credential_ttl,
        in_flight=InFlight(settings.max_unauthenticated_bytes),
        media=MediaWorkers(
            settings.media_workers, timeout=settings.media_timeout, memory=settings.media_memory
        ),
        remote=RemoteFiles(settings.fetch_allow_networks, timeout=settings.fetch_timeout),
        events=events,
        receipt_retention=settings.receipt_retention,
    )
