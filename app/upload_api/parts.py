"""From validated settings to the upload API's running parts: storage, the ledger, the media
workers, URL fetching and the webhook sender. ``create_upload_app`` calls these; the parts both
apps share (keys, limits, the ledger) come from ``app.core.parts``."""

from functools import partial

from app.core import parts as shared
from app.core.clock import Clock
from app.core.keysource import KeySource
from app.core.ledger import Ledger, MemoryLedger
from app.core.secret_files import read_secret_file
from app.core.settings import ConfigError, Settings
from app.core.webhooks.sender import WebhookMetrics, WebhookSender
from app.upload_api.admission import InFlight
from app.upload_api.context import Delivery, UploadContext
from app.upload_api.fetch import RemoteFiles
from app.upload_api.report import recover_events
from app.upload_api.storage import LocalStorage, Storage
from app.upload_api.workers import MediaWorkers


def storage(settings: Settings) -> Storage:
    """Where files are stored: the storage directory (the default), or an S3-compatible bucket
    with the directory as the spool."""
    if settings.storage_backend == "local":
        return LocalStorage(settings.storage_dir, implied_records=settings.storage_implied_records)
    # Loaded only for a bucket: its client starts a runtime of threads.
    from app.upload_api.storage.objects import BucketConfig, ObjectStorage

    secret = None
    if settings.s3_secret_access_key_file is not None:
        try:
            secret = read_secret_file(
                settings.s3_secret_access_key_file, "UPLOAD_AUTH_S3_SECRET_ACCESS_KEY_FILE"
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    elif settings.s3_secret_access_key is not None:
        secret = settings.s3_secret_access_key.get_secret_value()
    assert settings.s3_bucket is not None  # noqa: S101 - the settings require it with s3
    config = BucketConfig(
        bucket=settings.s3_bucket,
        prefix=settings.s3_prefix,
        endpoint=settings.s3_endpoint,
        region=settings.s3_region,
        path_style=settings.s3_path_style,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=secret,
        timeout=settings.s3_timeout,
        part_size=settings.s3_part_size,
        part_concurrency=settings.s3_part_concurrency,
        delivery=settings.s3_delivery,
        redirect_ttl=settings.s3_redirect_ttl,
    )
    return ObjectStorage(settings.storage_dir, config)


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
        delivery=Delivery(
            named=settings.delivery_named_transformations,
            signed_transformations=settings.delivery_signed_transformations,
            auto_avif=settings.delivery_auto_avif,
            cache_size=settings.delivery_cache_size,
        ),
    )
