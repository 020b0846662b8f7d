"""From validated settings to the parts both apps share: the live key ring, the plan's limits,
the credential ledger, the webhook secret.

``app.core.settings`` is data and its validation; this module does what needs more than the data:
it reads key files, watches them for reloads, makes the development key pair and chooses the
ledger. Each app's own parts are made in its ``parts`` module, which calls these; both run when
an app is built, so a key file that cannot be read stops the process at start-up, with one line
(``ConfigError``), as a bad value does.
"""

from functools import cache
from typing import Final

from app.core.imagekit.rules import PlanLimits
from app.core.keys import KeyPair, KeyRing, generate_pair
from app.core.keysource import KeySource
from app.core.ledger import Ledger
from app.core.logs import scrub
from app.core.secret_files import read_secret_file
from app.core.settings import ConfigError, KeyPairConfig, Settings, check_private_key
from app.core.webhooks.outbox import Outbox, OutboxLimits, RedisOutbox, SqliteOutbox

#: What a key reload re-reads; everything else keeps its start-up value.
_RELOADABLE: Final = frozenset(
    {"keys", "signing_key", "public_key", "private_key", "public_key_file", "private_key_file"}
)


def keys(settings: Settings, given: KeySource | None = None) -> KeySource:
    """The key source: ``given`` (one shared by both apps of a process), or the settings' own;
    ConfigError if a key cannot be read."""
    if given is not None:
        return given
    try:
        return key_source(settings)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def shared_ledger(settings: Settings, given: Ledger | None = None) -> Ledger | None:
    """The credential ledger every replica shares: ``given`` (one process serving both apps),
    else Redis when configured, else None (this process alone: see each app)."""
    if given is not None:
        return given
    if settings.redis_url is None:
        return None
    from app.core.ledger.redis import RedisLedger

    return RedisLedger(settings.redis_url.get_secret_value())


# -- keys -------------------------------------------------------------------------------------


@cache
def development_pair() -> KeyPair:
    """The throwaway pair of development mode with no keys configured: one per process, so
    the credential service and the upload API of ``upload-auth dev`` sign and verify alike."""
    return generate_pair()


def _resolve(entry: KeyPairConfig) -> KeyPair:
    setting = f"keys[{entry.public_key}].private_key"
    if entry.private_key_file is not None:
        value = read_secret_file(entry.private_key_file, setting + "_file")
    else:
        value = entry.private_key.get_secret_value() if entry.private_key else ""
    return KeyPair(entry.public_key, check_private_key(value, setting))


def _env_pair(settings: Settings) -> KeyPair | None:
    """The pair of the official SDKs' variables (``IMAGEKIT_*_KEY`` and ``..._FILE``)."""
    public = settings.public_key
    if settings.public_key_file is not None:
        public = read_secret_file(settings.public_key_file, "IMAGEKIT_PUBLIC_KEY_FILE")
    private = settings.private_key.get_secret_value() if settings.private_key else None
    if settings.private_key_file is not None:
        private = read_secret_file(settings.private_key_file, "IMAGEKIT_PRIVATE_KEY_FILE")
    if public is None or private is None:  # both or neither: the settings checked that
        return None
    return KeyPair(public, check_private_key(private, "IMAGEKIT_PRIVATE_KEY"))


def key_ring(settings: Settings) -> KeyRing:
    """The configured key pairs (reading key files); in development mode with none, the
    process's throwaway pair. ValueError naming the setting when a key cannot be used."""
    pairs = [_resolve(entry) for entry in settings.keys]
    env_pair = _env_pair(settings)
    if env_pair is not None:
        pairs.insert(0, env_pair)
    if not pairs:  # only in development mode: the settings refuse no keys otherwise
        pairs = [development_pair()]
    if len({p.private_key for p in pairs}) != len(pairs):
        raise ValueError("keys: two key pairs share a private key")
    try:
        return KeyRing(pairs, signing_public_key=settings.signing_key)
    except ValueError as exc:
        raise ValueError(f"keys: {exc}") from None


def key_source(settings: Settings) -> KeySource:
    """The key ring, live: reloaded when a key file or the config file changes (or on
    SIGHUP). Keys given only as environment values, or generated, never change."""
    ring = key_ring(settings)
    files = [settings.config_file, settings.public_key_file, settings.private_key_file]
    files += [entry.private_key_file for entry in settings.keys]
    watched = tuple(path for path in files if path is not None)
    if not watched:
        return KeySource(ring)
    fixed = {name: getattr(settings, name) for name in settings.model_fields_set - _RELOADABLE}

    def load() -> KeyRing:
        return key_ring(type(settings)(**fixed))

    return KeySource(
        ring, load, watched, on_change=lambda new: scrub(p.private_key.decode() for p in new)
    )


# -- limits, ledger, webhooks -----------------------------------------------------------------


def plan_limits(settings: Settings) -> PlanLimits:
    """The upload API's size limits: the plan's, unless overridden."""
    plan = PlanLimits.for_plan(settings.plan)
    return PlanLimits(
        plan.max_size if settings.max_file_size is None else settings.max_file_size,
        plan.max_video_size if settings.max_video_size is None else settings.max_video_size,
    )


def webhook_secret(settings: Settings) -> bytes | None:
    """The webhook secret's bytes (from the setting or its file); ConfigError if the file
    cannot be read; None when no webhook is configured."""
    if settings.webhook_url is None:
        return None
    if settings.webhook_secret is not None:
        return settings.webhook_secret.get_secret_value().encode()
    if settings.webhook_secret_file is None:  # pragma: no cover - the settings refuse this
        raise ConfigError("UPLOAD_AUTH_WEBHOOK_SECRET is required with UPLOAD_AUTH_WEBHOOK_URL")
    try:
        return read_secret_file(
            settings.webhook_secret_file, "UPLOAD_AUTH_WEBHOOK_SECRET_FILE"
        ).encode()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def webhook_outbox(settings: Settings) -> Outbox:
    """Where upload events wait, within the settings' bounds: Redis (shared by the replicas)
    when configured, else SQLite on the storage volume."""
    limits = _outbox_limits(settings)
    if settings.redis_url is not None:
        return RedisOutbox(settings.redis_url.get_secret_value(), limits)
    return SqliteOutbox(settings.storage_dir / "webhooks" / "outbox.sqlite3", limits)


def webhook_spool(settings: Settings) -> Outbox | None:
    """Where an event goes when the shared outbox (Redis) does not take it: SQLite on this
    replica's storage volume, delivered from by this replica; None without Redis (the outbox
    is on the volume already)."""
    if settings.redis_url is None:
        return None
    return SqliteOutbox(
        settings.storage_dir / "webhooks" / "spool.sqlite3", _outbox_limits(settings)
    )


def _outbox_limits(settings: Settings) -> OutboxLimits:
    return OutboxLimits(
        max_pending=settings.webhook_max_pending,
        max_pending_bytes=settings.webhook_max_pending_bytes,
        max_dead=settings.webhook_max_dead,
        dead_retention_ms=settings.webhook_dead_retention * 1000,
    )
