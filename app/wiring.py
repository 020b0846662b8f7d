"""From validated settings to the running parts: the live key ring and the upload policy.

``app.config`` is data and its validation; this module does what needs more than the data: it
reads key files, watches them for reloads, makes the development key pair and builds the policy
from the profiles. Both app factories call ``assemble`` when they are built, so a key file that
cannot be read stops the process at start-up, with one line (``ConfigError``), as a bad value
does.
"""

from dataclasses import dataclass, replace
from functools import cache
from typing import Final

from app.config import ConfigError, KeyPairConfig, ProfileConfig, Settings, check_private_key
from app.imagekit.filetypes import ALLOWED
from app.imagekit.rules import PlanLimits, parse_size
from app.keys import KeyPair, KeyRing, generate_pair
from app.keysource import KeySource
from app.logs import scrub
from app.policy import Policy, Profile, seed_profile
from app.secretfile import read_secret_file

#: What a key reload re-reads; everything else keeps its start-up value.
_RELOADABLE: Final = frozenset(
    {"keys", "signing_key", "public_key", "private_key", "public_key_file", "private_key_file"}
)


@dataclass(frozen=True, slots=True)
class Parts:
    """What both apps are built from."""

    keys: KeySource
    policy: Policy


def assemble(settings: Settings, keys: KeySource | None = None) -> Parts:
    """The key source (``keys``, or the settings' own) and the policy; ConfigError if the
    keys cannot be read."""
    try:
        return Parts(keys or key_source(settings), policy(settings))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


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


# -- the policy -------------------------------------------------------------------------------


def plan_limits(settings: Settings) -> PlanLimits:
    """The upload API's size limits: the plan's, unless overridden."""
    plan = PlanLimits.for_plan(settings.plan)
    return PlanLimits(
        parse_size(settings.max_file_size) if settings.max_file_size is not None else plan.max_size,
        parse_size(settings.max_video_size)
        if settings.max_video_size is not None
        else plan.max_video_size,
    )


def profile(
    name: str, config: ProfileConfig, plan: PlanLimits, default_ttl: int, *, dev_mode: bool
) -> Profile:
    """A ``[profiles.NAME]`` table as the policy's profile: sizes capped by the plan, the
    lifetime by the service's, v1 on by default only in development mode."""

    def capped(value: int | str | None, ceiling: int) -> int:
        return ceiling if value is None else min(parse_size(value), ceiling)

    return Profile(
        name=name,
        types=frozenset(config.types) if config.types is not None else frozenset(ALLOWED),
        limits=PlanLimits(
            capped(config.max_size, plan.max_size),
            capped(config.max_video_size, plan.max_video_size),
        ),
        folder=config.folder,
        use_unique_file_name=config.use_unique_file_name,
        overwrite=config.overwrite,
        private=config.private,
        tags=tuple(config.tags),
        ttl=min(config.ttl or default_ttl, default_ttl),
        allow_v1=dev_mode if config.allow_v1 is None else config.allow_v1,
        read_folder=config.read_folder,
        url_lifetime=config.url_lifetime,
    )


def policy(settings: Settings) -> Policy:
    """The upload policy: the configured profiles, or the seed's upload API as ``default``
    (and, in development mode, ``private``: the same types into each caller's own private
    folder, for the demo's signed links)."""
    limits, ttl, dev = plan_limits(settings), settings.credential_ttl, settings.dev_mode
    profiles = {
        name: profile(name, config, limits, ttl, dev_mode=dev)
        for name, config in settings.profiles.items()
    }
    if not profiles:
        profiles["default"] = seed_profile(limits, ttl, allow_v1=dev)
        if dev:
            profiles["private"] = replace(
                profiles["default"], name="private", private=True, folder="/private/{caller}"
            )
    return Policy(profiles, settings.default_profile)


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
