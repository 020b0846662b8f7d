"""Configuration: one frozen Settings class, validated completely at start-up.

Sources, highest priority first: constructor arguments, environment variables, the TOML config
file (``UPLOAD_AUTH_CONFIG_FILE``), defaults. The key pair comes from the official SDKs' own
variables ``IMAGEKIT_PUBLIC_KEY`` / ``IMAGEKIT_PRIVATE_KEY`` (each also as ``..._FILE``, a path to a
mounted secret); more pairs (up to five) and the policy profiles come from the config file.
Everything else is ``UPLOAD_AUTH_<NAME>``. A bad value stops the process with one line naming the
setting (``describe_error``), never echoing a secret.
"""

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_args
from urllib.parse import urlsplit

from limits import RateLimitItem
from limits import parse as parse_limit
from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    PlainSerializer,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from app.core.clock import LEEWAY_SECONDS, MAX_CREDENTIAL_LIFETIME
from app.core.folders import NAMESPACE_PATTERN, check_template
from app.core.imagekit.filetypes import ALLOWED
from app.core.imagekit.rules import GIB, KIB, MIB, parse_size
from app.core.imagekit.transformations import TransformationError
from app.core.imagekit.transformations import parse as parse_transformation
from app.core.keys import MAX_KEY_PAIRS, MAX_PUBLIC_KEY_LENGTH, MIN_PRIVATE_KEY_BYTES
from app.core.redis_url import target_of

ENV_PREFIX: Final = "UPLOAD_AUTH_"
CONFIG_FILE_ENV: Final = ENV_PREFIX + "CONFIG_FILE"
#: Longest signed delivery URL a profile may allow: a week.
MAX_URL_LIFETIME: Final = 7 * 24 * 3600
#: Longest credential lifetime we hand out: the upload API's hour, less the clock leeway.
MAX_TTL: Final = MAX_CREDENTIAL_LIFETIME - LEEWAY_SECONDS
_PUBLIC_KEY_PATTERN: Final = rf"^[\x21-\x7e]{{1,{MAX_PUBLIC_KEY_LENGTH}}}$"
IMAGEKIT_UPLOAD_HOST: Final = "upload.imagekit.io"


class ConfigError(Exception):
    """The configuration cannot start the service; the message is one line, secret-free."""


def check_private_key(value: str, setting: str) -> bytes:
    """A private key's bytes, if it can be one (ValueError naming ``setting`` otherwise)."""
    raw = value.encode()
    if len(raw) < MIN_PRIVATE_KEY_BYTES:
        raise ValueError(
            f"{setting}: must be at least {MIN_PRIVATE_KEY_BYTES} bytes "
            "(ImageKit private keys are 36 characters)"
        )
    if value != value.strip() or any(c.isspace() for c in value):
        raise ValueError(f"{setting}: must not contain whitespace")
    return raw


def to_size(value: object) -> object:
    """A size as written (bytes, or ``"25mb"``) as bytes; parsed here, once."""
    return parse_size(value) if isinstance(value, str) else value


#: Bytes, written as a number or a string such as "25mb"; bytes once the settings load.
Size = Annotated[int, BeforeValidator(to_size), Field(ge=0)]


class KeyPairConfig(BaseModel):
    """A ``[[keys]]`` entry of the config file."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    public_key: str = Field(pattern=_PUBLIC_KEY_PATTERN)
    """The pair's public key."""
    private_key: SecretStr | None = None
    """The pair's private key (secret), or:"""
    private_key_file: Path | None = None
    """a file holding it."""

    @model_validator(mode="after")
    def _one_source(self) -> "KeyPairConfig":
        if (self.private_key is None) == (self.private_key_file is None):
            raise ValueError("give exactly one of private_key and private_key_file")
        return self

    @field_validator("private_key")
    @classmethod
    def _private(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None:
            name = info.data.get("public_key", "?")
            check_private_key(value.get_secret_value(), f"keys[{name}].private_key")
        return value


class ProfileConfig(BaseModel):
    """A ``[profiles.<name>]`` table of the config file."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    types: list[str] | None = None
    """The allowed extensions; unset: every type the upload API allows."""
    max_size: Size | None = None
    """Largest non-video file (`"2mb"`), capped by the plan's limit."""
    max_video_size: Size | None = None
    """Largest video file, capped by the plan's limit."""
    folder: str = "/"
    """Where uploads go; `{caller}` is the authenticated caller's id."""
    use_unique_file_name: bool = True
    """Add a random suffix to every stored name."""
    overwrite: bool = False
    """Let an upload replace an existing file of the same name."""
    private: bool = False
    """Store every upload as a private file (served only through signed URLs)."""
    tags: list[str] = Field(default_factory=list, max_length=30)
    """Tags added to every upload; up to 30, without `,` or `%`."""
    ttl: int | None = Field(default=None, ge=10, le=MAX_TTL)
    """Lifetime of this profile's credentials, seconds; capped by `credential_ttl`."""
    read_folder: str | None = None
    """Signed delivery URLs: the folder (template) callers may read; default: the profile's
    folder."""
    url_lifetime: int = Field(default=3600, ge=10, le=MAX_URL_LIFETIME)
    """Longest signed URL, seconds."""
    allow_v1: bool | None = None
    """Issue v1 credentials for this profile; default: only in development mode."""

    @field_validator("types")
    @classmethod
    def _known_types(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        lowered = [t.lower().lstrip(".") for t in value]
        unknown = sorted(set(lowered) - ALLOWED.keys())
        if unknown:
            raise ValueError(f"not allowed upload types: {', '.join(unknown)}")
        if not lowered:
            raise ValueError("must list at least one type")
        return lowered

    @field_validator("folder", "read_folder")
    @classmethod
    def _folder(cls, value: str | None) -> str | None:
        if value is not None:
            check_template(value)
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        if any(not t or "," in t or "%" in t for t in value):
            raise ValueError("tags must be non-empty and contain neither ',' nor '%'")
        return value


_NAME_PATTERN: Final = r"^[A-Za-z0-9_.@:-]{1,64}$"
_LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})


def _check_endpoint(url: str) -> str:
    parsed = urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError("must be an http(s) URL")
    return url


def check_secure_endpoint(url: str) -> str:
    """https, or plain http only to this machine (a test, a local proxy)."""
    parsed = urlsplit(_check_endpoint(url))
    if parsed.scheme != "https" and parsed.hostname not in _LOOPBACK_HOSTS:
        raise ValueError("must be https (plain http only to localhost)")
    return url


#: Where the app's session check lives: often plain http inside a compose or cluster network.
Endpoint = Annotated[str, AfterValidator(_check_endpoint)]
#: Where signing keys come from: https, so nobody on the path can swap them.
SecureEndpoint = Annotated[str, AfterValidator(check_secure_endpoint)]


class ApiKeyConfig(BaseModel):
    """An ``[[callers.api_keys]]`` entry: a back end allowed to ask for credentials."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    name: str = Field(pattern=_NAME_PATTERN)
    """The caller id."""
    namespace: str = Field(default="key", pattern=NAMESPACE_PATTERN)
    """The namespace of this caller's identity: `key:NAME` in receipts and audit lines,
    `key-NAME` for `{caller}` in folders. Share a namespace between methods only to make their
    callers one."""
    read_all_receipts: bool = False
    """May read the receipts of credentials issued to any caller (a back end serving the users
    who upload); without it, only of those issued to itself."""
    hash: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    """The key's SHA-256, as `upload-auth new-api-key` prints it."""
    profiles: list[str] | None = None
    """The profiles this caller may use; unset: all."""


#: Asymmetric only: no HS* (a public key must never serve as an HMAC secret), never none.
#: ``Ed25519`` is the fully-specified name of EdDSA over Ed25519 (RFC 9864).
IdpAlgorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
    "Ed25519",
]  # fmt: skip


def _listed(value: object) -> object:
    """One value where a list is wanted is the list of that value."""
    return [value] if isinstance(value, str | dict | BaseModel) else value


class IdpConfig(BaseModel):
    """A ``[callers.idp]`` provider (``[[callers.idp]]`` for several): end-user JWTs from an
    OpenID Connect / OAuth identity provider."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    issuer: str = Field(min_length=1, max_length=2048)
    """The `iss` the tokens must carry, exactly. Without `jwks_url`, the keys are found from
    it by discovery (`ISSUER/.well-known/openid-configuration`, else OAuth server metadata),
    so it must then be https (plain http only to localhost)."""
    jwks_url: SecureEndpoint | None = None
    """The provider's key set, when discovery is not wanted or not offered; https (plain http
    only to localhost)."""
    audience: Annotated[list[str], BeforeValidator(_listed)] = Field(min_length=1, max_length=20)
    """The audience(s) accepted, any one of them (several client ids: an iOS and an Android
    app, a web client)."""
    audience_claim: Literal["aud", "azp", "client_id"] = "aud"
    """Where the tokens carry their audience: `aud` (OpenID ID tokens, most access tokens),
    `client_id` (Cognito access tokens) or `azp` (Clerk session tokens), as the provider
    documents; with `azp` or `client_id`, `aud` is not required."""
    scopes: list[str] = Field(default_factory=list, max_length=20)
    """Scopes every token must grant (`scope`, space-separated, or `scp`, a list or a string);
    none: not checked."""
    algorithms: list[IdpAlgorithm] = Field(
        default_factory=lambda: list(get_args(IdpAlgorithm)), min_length=1
    )
    """Accepted signature algorithms; asymmetric only."""
    caller_claim: str = Field(default="sub", min_length=1)
    """The claim naming the caller (a string of 1 to 256 characters)."""
    namespace: str = Field(default="idp", pattern=NAMESPACE_PATTERN)
    """The namespace of these callers' identities (`idp:SUB`; `idp-SUB` in folders); each
    provider its own when there are several."""
    profiles: list[str] | None = None
    """The profiles these callers may use; unset: all."""
    cache_seconds: int = Field(default=60, ge=10, le=86400)
    """How long fetched keys are kept, seconds: a key the provider removed is trusted this
    long at most."""
    refetch_seconds: int = Field(default=10, ge=1, le=3600)
    """Least time between two fetches prompted by a token (an unknown `kid`, or a signature
    failing under a known one: the provider rotated), seconds."""
    timeout: float = Field(default=2.0, gt=0, le=10)
    """Discovery and key-set fetch timeout, seconds."""

    @model_validator(mode="after")
    def _discoverable(self) -> "IdpConfig":
        if self.jwks_url is None:
            try:
                check_secure_endpoint(self.issuer)
            except ValueError as exc:
                raise ValueError(
                    f"issuer {self.issuer!r} cannot be discovered ({exc}): give jwks_url"
                ) from None
        return self


class ForwardAuthConfig(BaseModel):
    """``[callers.forward]``: ask the app's own session check (cookie-session web apps)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    url: Endpoint
    """The app's session check, asked with the request's Cookie (and Authorization, with
    `forward_authorization`)."""
    forward_authorization: bool = False
    """Also send the request's Authorization header (apps whose sessions are bearer tokens);
    a header holding an API key, in any spelling, is refused and never sent."""
    timeout: float = Field(default=2.0, gt=0, le=10)
    """Session-check timeout, seconds."""
    caller_header: str | None = None
    """Response header naming the caller (default X-Caller-Id)."""
    caller_field: str | None = None
    """Or: the field of a JSON answer naming the caller."""
    namespace: str = Field(default="session", pattern=NAMESPACE_PATTERN)
    """The namespace of these callers' identities (`session:ID`; `session-ID` in folders)."""
    profiles: list[str] | None = None
    """The profiles these callers may use; unset: all."""

    @model_validator(mode="after")
    def _one_source(self) -> "ForwardAuthConfig":
        if self.caller_header is not None and self.caller_field is not None:
            raise ValueError("give caller_header or caller_field, not both")
        return self

    @property
    def header(self) -> str | None:
        """The response header naming the caller, unless a JSON field does."""
        if self.caller_field is not None:
            return None
        return self.caller_header or "X-Caller-Id"


class CallersConfig(BaseModel):
    """``[callers]``: every way a caller may prove who it is; the first that matches wins."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    api_keys: list[ApiKeyConfig] = Field(default_factory=list, max_length=1000)
    """Back ends with an API key (`upload-auth new-api-key`); at most 1000."""
    idp: Annotated[list[IdpConfig], BeforeValidator(_listed)] = Field(
        default_factory=list, max_length=20
    )
    """End users with a JWT from OpenID Connect / OAuth identity providers: one table, or an
    array of tables for several issuers (each its own namespace)."""
    forward: ForwardAuthConfig | None = None
    """Users of a cookie-session web app, checked by asking the app."""

    @model_validator(mode="after")
    def _providers_apart(self) -> "CallersConfig":
        for field_name in ("issuer", "namespace"):
            values = [getattr(provider, field_name) for provider in self.idp]
            twice = sorted({value for value in values if values.count(value) > 1})
            if twice:
                raise ValueError(
                    f"two identity providers share the {field_name} {twice[0]!r}: give each "
                    "its own (one provider takes several audiences)"
                )
        return self

    @property
    def configured(self) -> bool:
        return bool(self.api_keys) or bool(self.idp) or self.forward is not None

    def profile_names(self) -> set[str]:
        lists = [k.profiles for k in self.api_keys]
        lists += [m.profiles for m in (*self.idp, self.forward) if m is not None]
        return {name for names in lists if names for name in names}


def _off_is_none(value: object) -> object:
    """``"off"`` (or an empty value) switches a limit off: TOML and env vars have no null."""
    if isinstance(value, str) and value.strip().lower() in ("", "off", "none"):
        return None
    return value


_QUOTA_RE: Final = re.compile(r"^\s*([^/]+?)\s*/\s*(.+?)\s*$")


def parse_rate(text: str) -> RateLimitItem:
    """A request rate such as ``"120/minute"`` (``limits`` notation); ValueError if not one."""
    item = parse_limit(text)
    if item.amount < 1:
        raise ValueError("the amount must be at least 1")
    return item


def parse_quota(text: str) -> RateLimitItem:
    """A byte quota such as ``"2gb/hour"`` or ``"500mb/10 minutes"``: bytes per period."""
    match = _QUOTA_RE.match(text)
    if not match:
        raise ValueError("a quota is <size>/<period>, e.g. 2gb/hour")
    return parse_rate(f"{parse_size(match.group(1))}/{match.group(2)}")


def to_rate(value: object) -> object:
    """A rate as written (``"600/minute"``, or ``off``) as a ``limits`` item, or None."""
    value = _off_is_none(value)
    return parse_rate(value) if isinstance(value, str) else value


def to_quota(value: object) -> object:
    """A byte quota as written (``"10gb/hour"``, or ``off``) as a ``limits`` item, or None."""
    value = _off_is_none(value)
    return parse_quota(value) if isinstance(value, str) else value


def size_text(size: int) -> str:
    """Bytes as a size is written in the settings (``1gb``, ``32mb``, ``512``)."""
    for unit, factor in (("gb", GIB), ("mb", MIB), ("kb", KIB)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def rate_text(item: RateLimitItem, *, quota: bool = False) -> str:
    """A rate (or a byte quota) as it is written in the settings: ``600/minute``."""
    count = size_text(item.amount) if quota else str(item.amount)
    unit = item.GRANULARITY.name
    return f"{count}/{unit}" if item.multiples == 1 else f"{count}/{item.multiples} {unit}s"


#: Requests per period, per caller (``limits`` notation), or None: no limit.
Rate = Annotated[
    RateLimitItem | None,
    BeforeValidator(to_rate),
    PlainSerializer(lambda item: None if item is None else rate_text(item)),
]
#: Bytes per period, per caller, or None: no quota.
Quota = Annotated[
    RateLimitItem | None,
    BeforeValidator(to_quota),
    PlainSerializer(lambda item: None if item is None else rate_text(item, quota=True)),
]


class Settings(BaseSettings):
    """Everything the service can be told. Frozen; unknown keys are errors."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        use_attribute_docstrings=True,
        arbitrary_types_allowed=True,  # limits' rate items
    )

    # -- keys ---------------------------------------------------------------------------------
    public_key: str | None = Field(
        default=None,
        pattern=_PUBLIC_KEY_PATTERN,
        validation_alias=AliasChoices("IMAGEKIT_PUBLIC_KEY", "public_key"),
    )
    """The key pair's public key (the official SDKs' own variable name); 1 to 128 printable
    characters."""
    private_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("IMAGEKIT_PRIVATE_KEY", "private_key")
    )
    """The key pair's private key: secret, at least 32 bytes, no whitespace."""
    public_key_file: Path | None = Field(
        default=None, validation_alias=AliasChoices("IMAGEKIT_PUBLIC_KEY_FILE", "public_key_file")
    )
    """Read the public key from this file (Docker and Kubernetes secrets); a trailing newline is
    ignored."""
    private_key_file: Path | None = Field(
        default=None, validation_alias=AliasChoices("IMAGEKIT_PRIVATE_KEY_FILE", "private_key_file")
    )
    """Read the private key from this file; not both a value and a file."""
    keys: list[KeyPairConfig] = Field(default_factory=list, max_length=MAX_KEY_PAIRS)
    """More key pairs (`[[keys]]` in the config file); at most five in all, unique."""
    signing_key: str | None = None
    """Public key of the signing pair."""

    # -- where the config file is (read by the TOML source below) -----------------------------
    config_file: Path | None = None
    """The TOML config file; it must exist."""

    # -- behaviour ----------------------------------------------------------------------------
    dev_mode: bool = False
    """Development mode: a throwaway key pair if none is set, callers without credentials accepted
    as `dev`, API docs on, any CORS origin. Never in production."""
    credential_ttl: int = Field(default=1800, ge=10, le=MAX_TTL)
    """Lifetime of a credential, seconds: an hour less the 30 s clock leeway at most."""
    plan: Literal["free", "paid"] = "free"
    """The account plan whose size limits apply: `free` 25 MB for every file; `paid` 25 MB, 300 MB
    for video."""
    default_profile: str = "default"
    """The profile used when a request names none; it must exist."""
    profiles: dict[str, ProfileConfig] = Field(default_factory=dict, max_length=100)
    """Named upload rules (`[profiles.NAME]`, below); none: the upload API's own rules as
    `default`."""
    upload_api_url: str = Field(
        default=f"https://{IMAGEKIT_UPLOAD_HOST}", pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$"
    )
    """Where uploads go: the base of the v2 `uploadUrl` (`upload-auth dev`: itself)."""
    url_endpoint: str | None = Field(default=None, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
    """Where files are delivered, the base of signed URLs (ImageKit:
    https://ik.imagekit.io/YOUR_ID); default: UPLOAD_API_URL/files when the upload API is
    upload-auth's."""

    # -- the upload API ------------------------------------------------------------------------
    max_file_size: Size | None = None
    """Override the plan's limit for non-video files."""
    max_video_size: Size | None = None
    """Override the plan's limit for video files."""
    storage_dir: Path = Path("data/uploads")
    """Upload API: where files are stored."""
    storage_min_free: Size = Field(default=256 * MIB, ge=0, le=1024 * GIB)
    """Upload API: free space below which `/readyz` answers 503 (a replica whose disk is full
    is taken out of the load balancer before its uploads fail); `0`: not checked."""
    storage_implied_records: bool = True
    """Upload API, `local` storage: a uniquely named upload whose record says nothing its path
    and bytes do not (no tags, custom metadata, privacy or webhook event; a web image or a
    document) keeps no record file in `meta/`: its record is made again from the file when it
    is served (one inode per upload instead of two). Replicas of earlier versions cannot read
    such files: turn this off while they share the volume during an update."""
    storage_backend: Literal["local", "s3"] = "local"
    """Upload API: where stored files live: `local`, in `STORAGE_DIR` (replicas share it as a
    `ReadWriteMany` volume); `s3`, in an S3-compatible bucket (AWS S3, R2, MinIO...), with
    `STORAGE_DIR` only the replica's spool for uploads in flight, shared with nobody."""
    s3_bucket: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    """With `STORAGE_BACKEND=s3`: the bucket."""
    s3_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9!_.*'()/-]{0,256}$")
    """With `s3`: the folder in the bucket that holds everything (records, objects, derived)."""
    s3_endpoint: str | None = Field(default=None, pattern=r"^https?://[^\s/?#]+/?$")
    """With `s3`: the store's endpoint (R2: `https://ACCOUNT.r2.cloudflarestorage.com`, MinIO:
    its URL); unset: AWS's for the region. Also read from `AWS_ENDPOINT_URL`."""
    s3_region: str | None = Field(default=None, pattern=r"^[a-z0-9-]{1,32}$")
    """With `s3`: the region (R2: `auto`); also read from `AWS_REGION`/`AWS_DEFAULT_REGION`."""
    s3_path_style: bool = False
    """With `s3`: address the bucket in the path (`endpoint/bucket/key`: MinIO, most
    self-hosted stores) rather than the host name (`bucket.endpoint/key`: AWS)."""
    s3_access_key_id: str | None = Field(default=None, pattern=r"^[\x21-\x7e]{1,128}$")
    """With `s3`: the access key's id; unset: the AWS chain (`AWS_ACCESS_KEY_ID`/
    `AWS_SECRET_ACCESS_KEY`, web identity (EKS), ECS task role, the instance's role)."""
    s3_secret_access_key: SecretStr | None = None
    """With `S3_ACCESS_KEY_ID`: its secret, or:"""
    s3_secret_access_key_file: Path | None = None
    """Read the secret access key from this file (Docker and Kubernetes secrets)."""
    s3_timeout: float = Field(default=30.0, gt=0, le=600)
    """With `s3`: seconds for one request to the store (a part of a large upload is one);
    over it, after two retries, the upload is answered 503 with Retry-After."""
    s3_part_size: Size = Field(default=8 * MIB, ge=5 * MIB, le=512 * MIB)
    """With `s3`: files above this go up in parts of this size, at most `S3_PART_CONCURRENCY`
    at once: the memory an upload to the bucket uses, whatever the file's size."""
    s3_part_concurrency: int = Field(default=4, ge=1, le=32)
    """With `s3`: parts of one file sent at once."""
    s3_delivery: Literal["proxy", "redirect"] = "proxy"
    """With `s3`: how `/files` delivers: `proxy`, the bytes through the upload API (ETag,
    Range, 304 as with `local`); `redirect`, a 302 to a presigned URL of the bucket once the
    upload API's checks (signed URLs of private files) have passed."""
    s3_redirect_ttl: int = Field(default=300, ge=10, le=7 * 24 * 3600)
    """With `s3_delivery=redirect`: seconds a presigned URL lasts."""
    public_url: str | None = Field(default=None, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
    """Base of the url of stored files; default: the request's own base URL."""
    cors_origins: list[str] = Field(default_factory=list, max_length=100)
    """Origins browsers may call from, `scheme://host[:port]`; `*` only without forward auth."""
    redis_url: SecretStr | None = None
    """The shared credential ledger (grants, used credentials), rate limits and the webhook
    outbox: `redis://[user:password@]host:port[/db]` (`rediss://`: TLS), a Sentinel set
    `redis+sentinel://[user:password@]host:port,host:port/SERVICE` (the primary followed
    through a failover), or a Cluster `redis+cluster://[user:password@]host:port,host:port`."""
    max_unauthenticated_bytes: Size = Field(default=GIB, ge=32 * MIB, le=64 * GIB)
    """Upload API: most bytes of uploads not yet authenticated (their credential comes with the
    form) in flight in one process; over it, 503 with Retry-After."""
    media_workers: int = Field(default=2, ge=0, le=64)
    """Upload API: processes that read images, video and audio for ImageKit's metadata
    (dimensions, EXIF, duration, codecs) and make thumbnails; `0`: none (those fields are
    left out, but for the width and height of JPEG, PNG, GIF, WebP and BMP, read from their
    headers in process)."""
    media_timeout: float = Field(default=10.0, gt=0, le=300)
    """Upload API: seconds a media worker may spend on one file; over it, the worker is
    replaced and the upload goes on without the file's metadata."""
    media_memory: Size = Field(default=GIB, ge=256 * MIB, le=64 * GIB)
    """Upload API: address space of each media worker; a file that needs more is stored without
    its metadata."""
    delivery_named_transformations: dict[str, str] = Field(default_factory=dict, max_length=100)
    """Upload API: named transformations for delivery URLs (`n-<name>`), name to
    transformation, e.g. `{"card": "w-400,h-300:f-auto"}` (JSON in the environment); ImageKit's
    `ik_ml_thumbnail` is built in."""
    delivery_signed_transformations: bool = False
    """Upload API: a public file's transformed URL must be signed too (as private files' always
    are), so that only the sizes the app's own URLs name are rendered."""
    delivery_auto_avif: bool = False
    """Upload API: `f-auto` answers AVIF to browsers that take it (smaller files; a first
    render costs several times a WebP's); off: WebP."""
    delivery_cache_size: Size = Field(default=2 * GIB, ge=16 * MIB, le=16 * 1024 * GIB)
    """Upload API: bytes of rendered transformations kept (on the storage); past it the
    oldest renders go."""
    fetch_allow_networks: list[IPvAnyNetwork] = Field(default_factory=list, max_length=100)
    """Upload API: private networks (CIDRs) that `file` given as a URL may be fetched from; by
    default only public addresses are (never loopback, private, link-local or cloud
    metadata)."""
    fetch_timeout: float = Field(default=30.0, gt=0, le=600)
    """Upload API: seconds to fetch `file` given as a URL, redirects included."""
    accept_unbound_v1: bool = False
    """Upload API: accept v1 signatures that upload-auth did not issue (no grant recorded), as
    ImageKit does; unsafe, always on in development mode."""

    # -- upload events --------------------------------------------------------------------------
    webhook_url: str | None = Field(default=None, pattern=r"^https?://[^\s/?#]+(/[^\s#]*)?$")
    """Upload API: where ImageKit's webhook events (`file.created`, `file-version.created`) are
    POSTed, signed with `webhook_secret`; unset: no events."""
    webhook_secret: SecretStr | None = None
    """The webhook signing secret (as in ImageKit's dashboard); required with `webhook_url`."""
    webhook_secret_file: Path | None = None
    """Read the webhook secret from this file; not both a value and a file."""
    webhook_timeout: float = Field(default=10.0, gt=0, le=120)
    """Seconds a webhook receiver has to answer one delivery."""
    webhook_max_attempts: int = Field(default=12, ge=1, le=100)
    """Deliveries tried before an event is kept as a dead letter."""
    webhook_retry_base: float = Field(default=5.0, ge=0.01, le=3600)
    """Seconds before the second attempt; each later wait doubles (at most an hour)."""
    webhook_max_pending: int = Field(default=100_000, ge=100, le=10_000_000)
    """Events waiting for delivery, at most; when as many wait (the receiver down for long),
    uploads are refused with 503 rather than stored without their event."""
    webhook_max_pending_bytes: Size = Field(default=256 * MIB, ge=MIB, le=64 * GIB)
    """Bytes of the events waiting for delivery, at most (each event is at most 64 KiB);
    over it, uploads are refused with 503 as above."""
    webhook_max_dead: int = Field(default=10_000, ge=10, le=1_000_000)
    """Dead letters kept, at most; past it the oldest go (`upload-auth webhooks` lists,
    replays and purges them)."""
    webhook_dead_retention: int = Field(default=7 * 24 * 3600, ge=3600, le=90 * 24 * 3600)
    """Seconds a dead letter is kept."""
    receipt_retention: int = Field(default=86400, ge=60, le=7 * 24 * 3600)
    """Seconds a credential's receipt (who it was issued to, which file it stored) is kept
    after the upload, for `POST /v1/receipts`."""

    # -- who may ask, and how often ----------------------------------------------------------
    callers: CallersConfig = Field(default_factory=CallersConfig)
    """Who may ask for credentials (`[callers]`, below); required outside development mode."""
    rate_limit_v1: Rate = parse_rate("600/minute")
    """v1 credentials per caller, in `limits` notation (`10/second`), or `off` (no limit)."""
    rate_limit_v2: Rate = parse_rate("300/minute")
    """v2 credentials per caller, in `limits` notation (`10/second`), or `off` (no limit)."""
    rate_limit_urls: Rate = parse_rate("600/minute")
    """Signed URLs per caller, in `limits` notation, or `off` (no limit)."""
    quota_v2: Quota = parse_quota("10gb/hour")
    """Bytes of v2 credentials' declared files per caller per period, or `off` (no quota)."""

    # -- operation ----------------------------------------------------------------------------
    trusted_proxies: list[str] = Field(default_factory=list, max_length=100)
    """Addresses/CIDRs whose X-Forwarded-For and -Proto are believed."""
    metrics_enabled: bool = True
    """Serve Prometheus metrics at `/metrics`."""
    expose_openapi: bool = False
    """Serve `/openapi.json` and `/docs` outside development mode."""
    access_log: bool = True
    """Write one JSON access line per request."""
    log_format: Literal["json", "text"] = "json"
    """`json` lines, or `text` for a terminal (`upload-auth dev` uses text)."""
    log_level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR"],
        BeforeValidator(lambda value: value.upper() if isinstance(value, str) else value),
    ] = "INFO"
    """The lowest level logged (any case: `warning` is `WARNING`)."""
    max_body_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    """Largest credential-request body, bytes."""
    max_header_bytes: int = Field(default=32 * 1024, ge=4 * 1024, le=1024 * 1024)
    """Largest request head (request line and header fields); 431 when over."""
    max_headers: int = Field(default=100, ge=16, le=1000)
    """Most header fields in a request; 431 when over."""
    head_timeout: float = Field(default=10.0, ge=0.5, le=300)
    """Seconds a request head may take to arrive, from its first byte (a connection's first
    request: from the connection); over it, 408 and the connection closes (slow clients,
    slowloris)."""
    body_timeout: float = Field(default=60.0, ge=1, le=3600)
    """Seconds a request body may go without a byte arriving while the server reads it; over
    it, the connection closes."""
    max_connections: int = Field(default=4096, ge=16, le=1_000_000)
    """Connections one process holds; one more closes the connection whose head has been
    incomplete the longest (or, with none, is refused with 503), so the probes keep answering."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - no .env files, on purpose
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - we use ..._FILE
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources = [init_settings, env_settings]
        init_kwargs: dict[str, Any] = getattr(init_settings, "init_kwargs", {})
        path = init_kwargs.get("config_file") or os.environ.get(CONFIG_FILE_ENV)
        if path:
            path = Path(path)
            if not path.is_file():
                raise ConfigError(f"{CONFIG_FILE_ENV}: no such file: {path}")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or network: {item!r}") from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            target_of(value.get_secret_value())  # ValueError without the URL (a password)
        return value

    @field_validator("delivery_named_transformations")
    @classmethod
    def _named_transformations(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not re.fullmatch(r"[A-Za-z0-9_.]{1,64}", name):
                raise ValueError(f"{name!r}: a name is letters, digits, '_' and '.'")
            try:
                parse_transformation(text)
            except TransformationError as exc:
                raise ValueError(f"{name}: {exc}") from None
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not re.fullmatch(r"https?://[^\s/?#]+", origin):
                raise ValueError("origins are scheme://host[:port], without a path")
        return value

    @model_validator(mode="after")
    def _validate_whole(self) -> "Settings":
        self._check_key_sources()
        profiles = set(self.profiles) or {"default"}  # no profiles: the seed's, as "default"
        if self.default_profile not in profiles:
            raise ValueError(
                f"UPLOAD_AUTH_DEFAULT_PROFILE: no profile named "
                f"{self.default_profile!r} is configured"
            )
        unknown = self.callers.profile_names() - profiles
        if unknown:
            raise ValueError(f"callers: no such profile: {', '.join(sorted(unknown))}")
        if self.webhook_secret is not None and self.webhook_secret_file is not None:
            raise ValueError(
                "UPLOAD_AUTH_WEBHOOK_SECRET and UPLOAD_AUTH_WEBHOOK_SECRET_FILE: set one, not both"
            )
        has_secret = self.webhook_secret is not None or self.webhook_secret_file is not None
        if self.webhook_url is not None and not has_secret:
            raise ValueError(
                "UPLOAD_AUTH_WEBHOOK_URL: events are always signed; set UPLOAD_AUTH_WEBHOOK_SECRET "
                "(or _FILE)"
            )
        self._check_bucket()
        if self.callers.forward is not None and "*" in self.cors_origins:
            raise ValueError(
                "UPLOAD_AUTH_CORS_ORIGINS: '*' cannot be used with cookie sessions "
                "(callers.forward); list the app's origins"
            )
        return self

    def _check_bucket(self) -> None:
        if self.storage_backend == "s3" and self.s3_bucket is None:
            raise ValueError("UPLOAD_AUTH_STORAGE_BACKEND=s3 needs UPLOAD_AUTH_S3_BUCKET")
        if self.s3_secret_access_key is not None and self.s3_secret_access_key_file is not None:
            raise ValueError(
                "UPLOAD_AUTH_S3_SECRET_ACCESS_KEY and UPLOAD_AUTH_S3_SECRET_ACCESS_KEY_FILE: "
                "set one, not both"
            )
        has_secret = (
            self.s3_secret_access_key is not None or self.s3_secret_access_key_file is not None
        )
        if has_secret != (self.s3_access_key_id is not None):
            raise ValueError(
                "UPLOAD_AUTH_S3_ACCESS_KEY_ID and UPLOAD_AUTH_S3_SECRET_ACCESS_KEY (or _FILE) "
                "go together"
            )

    def require_caller_auth(self) -> None:
        """Default deny: the credential service does not start unless callers are checked."""
        if not self.dev_mode and not self.caller_auth_configured:
            raise ConfigError(
                "no caller authentication is configured: refusing to sign for anyone who asks "
                "(configure callers, or run `upload-auth dev` / UPLOAD_AUTH_DEV_MODE=true)"
            )

    @property
    def browser_origins(self) -> list[str]:
        """The origins browsers may call from: those configured, or any in development mode."""
        return self.cors_origins or (["*"] if self.dev_mode else [])

    @property
    def caller_auth_configured(self) -> bool:
        """Whether any caller authentication method is configured."""
        return self.callers.configured

    @property
    def openapi_enabled(self) -> bool:
        return self.expose_openapi or self.dev_mode

    @property
    def records_v1_grants(self) -> bool:
        """Whether v1 grants are worth recording: the upload API is ours (ImageKit's cannot
        read them; its v1 credentials are unbound by design)."""
        return urlsplit(self.upload_api_url).hostname != IMAGEKIT_UPLOAD_HOST

    @property
    def delivery_endpoint(self) -> str | None:
        """The base of signed delivery URLs: configured, or our upload API's ``/files``."""
        if self.url_endpoint is not None:
            return self.url_endpoint
        if self.records_v1_grants:  # the upload API is ours
            return self.upload_api_url.rstrip("/") + "/files"
        return None

    @property
    def upload_url_v2(self) -> str:
        return self.upload_api_url.rstrip("/") + "/api/v2/files/upload"

    def _check_key_sources(self) -> None:
        """What can be told about the keys without reading a file (``app.core.parts`` reads
        them): each of the SDK variables given once, both halves of the pair, some pair."""
        if self.public_key is not None and self.public_key_file is not None:
            raise ValueError("IMAGEKIT_PUBLIC_KEY and IMAGEKIT_PUBLIC_KEY_FILE are both set")
        if self.private_key is not None and self.private_key_file is not None:
            raise ValueError("IMAGEKIT_PRIVATE_KEY and IMAGEKIT_PRIVATE_KEY_FILE are both set")
        public = self.public_key is not None or self.public_key_file is not None
        private = self.private_key is not None or self.private_key_file is not None
        if public != private:
            raise ValueError("IMAGEKIT_PUBLIC_KEY and IMAGEKIT_PRIVATE_KEY must be set together")
        if self.private_key is not None:
            check_private_key(self.private_key.get_secret_value(), "IMAGEKIT_PRIVATE_KEY")
        if not public and not self.keys and not self.dev_mode:
            raise ValueError(
                "IMAGEKIT_PRIVATE_KEY: no key pair is configured (set "
                "IMAGEKIT_PUBLIC_KEY and IMAGEKIT_PRIVATE_KEY, or [[keys]])"
            )


_ENV_NAMES: Final = {
    "public_key": "IMAGEKIT_PUBLIC_KEY",
    "private_key": "IMAGEKIT_PRIVATE_KEY",
    "public_key_file": "IMAGEKIT_PUBLIC_KEY_FILE",
    "private_key_file": "IMAGEKIT_PRIVATE_KEY_FILE",
}


def _setting_name(loc: tuple[int | str, ...]) -> str:
    if not loc:
        return ""
    head = str(loc[0])
    if head in _ENV_NAMES or head in _ENV_NAMES.values():
        return _ENV_NAMES.get(head, head)
    if head in Settings.model_fields and len(loc) == 1:
        return f"{ENV_PREFIX}{head.upper()} ({head} in the config file)"
    return ".".join(str(part) for part in loc)


def _names_at(loc: tuple[int | str, ...]) -> list[str]:
    """The setting names valid where ``loc`` points (the fields of the model it lies in)."""
    model: Any = Settings
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        if field is None:  # a key of a dict of models (a profile's name)
            continue
        annotation: Any = field.annotation
        model = None
        for candidate in (annotation, *get_args(annotation)):
            for inner in (candidate, *get_args(candidate)):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    model = inner
    return list(model.model_fields) if model is not None else []


def _closest(name: str, names: list[str]) -> list[str]:
    import difflib  # only for a configuration error

    return difflib.get_close_matches(name, names, n=1)


def _did_you_mean(loc: tuple[int | str, ...]) -> str:
    close = _closest(str(loc[-1]).lower(), _names_at(loc[:-1]))
    return f" (did you mean {close[0]!r}?)" if close else ""


def describe_error(exc: ValidationError) -> str:
    """One line naming each bad setting, with pydantic's reason and never the input value; an
    unknown key says which known one is closest."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False, include_context=False):
        loc = tuple(err["loc"])
        name = _setting_name(loc)
        if err["type"] == "extra_forbidden" and loc:
            message = "unknown setting" + _did_you_mean(loc)
        else:
            message = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{name}: {message}" if name else message)
    return "; ".join(parts)


_SOURCE_FIELD: Final = re.compile(r'field "([^"]+)" from source')


def _undecodable(exc: Exception) -> str:
    """One line for a value the environment gives in a shape its setting cannot take (a list
    or a table written as a plain string, or JSON that does not parse)."""
    found = _SOURCE_FIELD.search(str(exc))
    name = found.group(1) if found else ""
    field = Settings.model_fields.get(name)
    if field is None:
        return "a setting in the environment cannot be read (lists and tables are JSON)"
    example = '["a", "b"]' if "list" in str(field.annotation) else '{"key": "value"}'
    return (
        f"{_setting_name((name,))}: cannot be read from the environment: lists and tables "
        f"are JSON there, e.g. {ENV_PREFIX}{name.upper()}='{example}'"
    )


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment (and config file), or ConfigError with one clear line."""
    unknown = sorted(
        name
        for name in os.environ
        if name.startswith(ENV_PREFIX)
        and name[len(ENV_PREFIX) :].lower().split("__")[0] not in Settings.model_fields
    )
    if unknown:
        name = unknown[0][len(ENV_PREFIX) :].lower()
        close = _closest(name, list(Settings.model_fields))
        hint = f" (did you mean {ENV_PREFIX}{close[0].upper()}?)" if close else " (typo?)"
        raise ConfigError(f"{unknown[0]}: unknown setting{hint}")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_error(exc)) from None
    except SettingsError as exc:  # a value the environment source cannot decode (JSON lists)
        raise ConfigError(_undecodable(exc)) from None
    except OSError as exc:  # the config file exists but cannot be read
        path = overrides.get("config_file") or os.environ.get(CONFIG_FILE_ENV)
        raise ConfigError(f"{CONFIG_FILE_ENV}: cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:  # its message says where: (at line L, column C)
        path = overrides.get("config_file") or os.environ.get(CONFIG_FILE_ENV)
        raise ConfigError(f"{CONFIG_FILE_ENV}: {path} is not valid TOML: {exc}") from None
