"""One upload, start to finish: read, authenticate, burn, validate, check, store, answer.

The order follows ImageKit's (``shared/spec/imagekit-upload-protocol.md`` §8): a credential is
burned as soon as its signature proves it genuine, before anything else can fail, so a failed
upload still uses it up.
"""

import base64
import binascii
import contextlib
import errno
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal
from urllib.parse import quote

from app import credentials
from app.clock import LEEWAY_SECONDS, MAX_CREDENTIAL_LIFETIME, Clock, unix_now
from app.imagekit.filetypes import ALLOWED, FileType, Kind, extension_of
from app.imagekit.rules import (
    PlanLimits,
    RuleError,
    check_tags,
    clean_name,
    format_size,
    is_within,
    normalise_folder,
)
from app.keys import KeyPair, KeyRing
from app.keysource import KeySource
from app.ledger import Burn, Ledger, LedgerUnavailable, credential_key
from app.logs import get_logger
from app.policy import UploadGrant
from app.receipts import Issued, Receipt
from app.upload_api import checks, wire
from app.upload_api.detect import detect
from app.upload_api.fetch import RemoteFiles
from app.upload_api.form import ENVELOPE_BYTES, UploadedFile, UploadForm, boundary_of, read_form
from app.upload_api.media import Probe, format_name
from app.upload_api.storage import LocalStorage, NameTaken, StoredFile
from app.upload_api.workers import MediaWorkers
from app.webhooks.events import file_event
from app.webhooks.sender import WebhookSender

log = get_logger("upload_api")

_RESPONSE_FIELDS: Final = frozenset(
    {
        "tags",
        "customCoordinates",
        "isPrivateFile",
        "embeddedMetadata",
        "isPublished",
        "customMetadata",
        "metadata",
        "selectedFieldsSchema",
    }
)
#: The probe's fields that go into the response as they are (ImageKit's names).
_MEDIA_FIELDS: Final = ("duration", "bitRate", "videoCodec", "audioCodec")
#: ImageKit's named transformation for the media library's thumbnails.
THUMBNAIL_SEGMENT: Final = "tr:n-ik_ml_thumbnail"


class InFlight:
    """Bytes of uploads in flight in this process whose credential is not yet checked (it
    comes with the form, after or before the file), bounded: an anonymous client can make the
    process write at most this much to disk at once, all anonymous clients together."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def meter(self, chunks: AsyncIterator[bytes]) -> "_Metered":
        return _Metered(self, chunks)


class _Metered:
    """A body whose bytes count against ``InFlight`` until ``release``."""

    def __init__(self, budget: InFlight, chunks: AsyncIterator[bytes]) -> None:
        self.budget = budget
        self.chunks = chunks
        self.charged = 0

    def __aiter__(self) -> "_Metered":
        return self

    async def __anext__(self) -> bytes:
        chunk = await anext(self.chunks)
        budget = self.budget
        if budget.used + len(chunk) > budget.limit:
            raise wire.busy()
        budget.used += len(chunk)
        self.charged += len(chunk)
        return chunk

    def release(self) -> None:
        self.budget.used -= self.charged
        self.charged = 0


@dataclass(frozen=True)
class UploadContext:
    keys: KeySource
    clock: Clock
    ledger: Ledger
    storage: LocalStorage
    limits: PlanLimits
    #: Accept v1 signatures with no grant in the ledger (development mode, or the operator's
    #: explicit, ImageKit-compatible and unsafe choice).
    accept_unbound_v1: bool = False
    #: The credential lifetime the service is configured with: a v1 credential without a grant
    #: record is taken to have been issued at ``expire`` minus this.
    credential_ttl: int = 1800
    #: Unauthenticated bytes in flight in this process.
    in_flight: InFlight = field(default_factory=lambda: InFlight(1024**3))
    #: Where files are read for their metadata (none: metadata left out).
    media: MediaWorkers = field(default_factory=lambda: MediaWorkers(0, timeout=1, memory=0))
    #: Fetches ``file`` given as a URL (public addresses only, unless allowed).
    remote: RemoteFiles = field(default_factory=RemoteFiles)
    #: Where upload events go (None: no webhook configured).
    events: WebhookSender | None = None
    #: Seconds a credential's receipt is kept after its upload.
    receipt_retention: int = 86400


@dataclass(frozen=True, slots=True)
class Authenticated:
    """How an upload was authenticated: who the credential was issued to, its ledger key (None
    for the private key itself), and a v1 credential's grant."""

    issued: Issued
    key: str | None = None
    grant: UploadGrant | None = None


PRIVATE_KEY: Final = Authenticated(Issued("private-key"))


def cap_for_head(limits: PlanLimits) -> Callable[[bytes], int]:
    """The streaming size cap, from the file's first bytes: video gets the video limit."""

    def cap(head: bytes) -> int:
        found = detect(head, None)
        is_video = found is not None and found.kind is Kind.VIDEO
        return limits.max_video_size if is_video else limits.max_size

    return cap


def basic_auth_key(header: str | None) -> str | None:
    """The user name of an HTTP Basic ``Authorization`` header (the private key), else None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise wire.cannot_authenticate() from None
    return decoded.partition(":")[0]  # the password is ignored (new SDKs send "do_not_set")


async def _burn(ctx: UploadContext, key: str, until: int, token: str) -> Burn:
    now_ms = int(ctx.clock() * 1000)
    try:
        burn = await ctx.ledger.burn(key, until - now_ms // 1000 + LEEWAY_SECONDS, now_ms=now_ms)
    except LedgerUnavailable:
        raise wire.store_unavailable() from None
    if not burn.fresh:
        raise wire.token_used(token)
    return burn


def _not_before_epoch(burn: Burn, issued_ms: int, token: str) -> None:
    """A credential issued before the ledger's epoch may have been used before the ledger
    forgot: it is refused, and the client fetches a new one."""
    if issued_ms < burn.epoch_ms:
        raise wire.token_forgotten(token)


def _end_of_second(seconds: int) -> int:
    """The latest moment, in milliseconds, of a time known to the second."""
    return seconds * 1000 + 999


def _by_private_key(keys: KeyRing, private_key: str) -> KeyPair:
    pair = keys.by_private_key(private_key.encode())
    if pair is None:
        raise wire.cannot_authenticate()
    return pair


async def authenticate_v1(
    ctx: UploadContext, basic: str | None, fields: Mapping[str, str]
) -> Authenticated:
    """Basic auth with the private key (no grant: the account owner, unrestricted), or
    publicKey + signature + expire + token (the grant recorded for the token, or none where
    unbound v1 credentials are accepted)."""
    if basic is not None and "signature" in fields:
        raise wire.both_auth_v1()
    if basic is not None:
        _by_private_key(ctx.keys.ring, basic)
        return PRIVATE_KEY
    if "signature" not in fields:
        raise wire.no_auth()
    for name in ("publicKey", "token"):
        if not fields.get(name):
            raise wire.missing_parameter(name)
    pair = ctx.keys.ring.get(fields["publicKey"])
    if pair is None:
        raise wire.cannot_authenticate()
    raw_expire = fields.get("expire", "")
    if not (raw_expire.isascii() and raw_expire.isdigit()) or len(raw_expire) > 12:
        raise wire.invalid_expire()
    expire, token = int(raw_expire), fields["token"]
    expected = credentials.v1_signature(pair, token, expire)
    if not hmac.compare_digest(expected.encode(), fields["signature"].encode()):
        raise wire.invalid_signature()
    now = unix_now(ctx.clock)
    if not now - LEEWAY_SECONDS < expire:  # it can never pass again: nothing to remember
        raise wire.invalid_expire()
    key = credential_key("v1", pair.public_key, token)
    burn = await _burn(ctx, key, expire, token)
    grant = None
    if burn.grant is not None:
        try:
            grant = UploadGrant.from_json(burn.grant)
        except ValueError:
            raise wire.store_unavailable() from None
    issued_ms = grant.issued_ms if grant else _end_of_second(expire - ctx.credential_ttl)
    _not_before_epoch(burn, issued_ms, token)
    if expire > now + MAX_CREDENTIAL_LIFETIME + LEEWAY_SECONDS:
        raise wire.invalid_expire()
    if grant is None and not ctx.accept_unbound_v1:
        raise wire.unbound_v1()
    if grant is None:
        return Authenticated(Issued("v1"), key)
    issued = Issued("v1", grant.caller, grant.profile, grant.request_id, grant.issued_ms or None)
    return Authenticated(issued, key, grant)


async def authenticate_v2(
    ctx: UploadContext, basic: str | None, fields: Mapping[str, str]
) -> Authenticated:
    """Basic auth with the private key, or a JWT whose payload equals the form fields."""
    token = fields.get("token")
    if basic is not None and token is not None:
        raise wire.both_auth_v2()
    if basic is not None:
        _by_private_key(ctx.keys.ring, basic)
        return PRIVATE_KEY
    if not token:
        raise wire.missing_parameter("token")
    now = unix_now(ctx.clock)
    try:
        verified = credentials.verify_v2(token, ctx.keys.ring, now=now)
    except credentials.ExpiredToken:
        raise wire.expired_token() from None
    except credentials.InvalidToken:
        raise wire.invalid_token() from None
    key = credential_key("v2", token)
    burn = await _burn(ctx, key, verified.exp, token)
    _not_before_epoch(burn, _end_of_second(verified.iat), token)
    sent = {name: value for name, value in fields.items() if name != "token"}
    if sent != verified.fields:
        raise wire.invalid_payload()
    return Authenticated(Issued.from_record("v2", burn.grant), key)


@dataclass(frozen=True)
class Options:
    """The validated upload parameters."""

    file_name: str
    folder: str
    unique: bool
    overwrite: bool
    private: bool
    published: bool
    tags: list[str] | None
    custom_coordinates: str | None
    custom_metadata: dict[str, Any] | None
    description: str | None
    response_fields: frozenset[str]


def _flag(fields: Mapping[str, str], name: str, default: bool) -> bool:
    value = fields.get(name)
    if value is None:
        return default
    if value not in ("true", "false"):
        raise wire.invalid_parameter(name)
    return value == "true"


def parse_options(fields: Mapping[str, str]) -> Options:
    file_name = fields.get("fileName")
    if not file_name:
        raise wire.missing_parameter("fileName")
    if len(file_name) > 1024:
        raise wire.invalid_parameter("fileName")
    try:
        folder = normalise_folder(fields.get("folder", "/"))
    except RuleError:
        raise wire.invalid_parameter("folder") from None
    for name in wire.BOOLEAN_FIELDS:
        _flag(fields, name, True)
    tags = None
    if fields.get("tags"):
        try:
            check_tags(fields["tags"])
        except RuleError:
            raise wire.invalid_parameter("tags") from None
        tags = [t.strip() for t in fields["tags"].split(",") if t.strip()]
    coordinates = fields.get("customCoordinates") or None
    if coordinates is not None:
        parts = coordinates.split(",")
        if len(parts) != 4 or not all(p.strip().isascii() and p.strip().isdigit() for p in parts):
            raise wire.invalid_parameter("customCoordinates")
    metadata = None
    if fields.get("customMetadata"):
        try:
            metadata = json.loads(fields["customMetadata"])
        except (ValueError, RecursionError):
            metadata = None
        if not isinstance(metadata, dict):
            raise wire.invalid_parameter("customMetadata")
    requested = {f.strip() for f in fields.get("responseFields", "").split(",") if f.strip()}
    if requested - _RESPONSE_FIELDS:
        raise wire.invalid_parameter("responseFields")
    return Options(
        file_name=file_name,
        folder=folder,
        unique=_flag(fields, "useUniqueFileName", True),
        overwrite=_flag(fields, "overwriteFile", True),
        private=_flag(fields, "isPrivateFile", False),
        published=_flag(fields, "isPublished", True),
        tags=tags,
        custom_coordinates=coordinates,
        custom_metadata=metadata,
        description=fields.get("description"),
        response_fields=frozenset(requested),
    )


#: The flags a v1 grant fixes: (field, the grant's attribute, the value that would widen it).
_GRANT_FLAGS: Final = (
    ("useUniqueFileName", "use_unique_file_name", "false", "requires unique file names"),
    ("overwriteFile", "overwrite", "true", "may not overwrite existing files"),
    ("isPrivateFile", "private", "false", "may only upload private files"),
)


def within_grant(fields: Mapping[str, str], grant: UploadGrant) -> dict[str, str]:
    """The upload's fields under a v1 grant: what the client left out is the grant's, what it
    sent may narrow the grant but never widen it (or the upload is refused, naming the limit)."""
    effective = dict(fields)
    requested = fields.get("folder")
    if requested is None:
        effective["folder"] = grant.folder
    else:
        try:
            folder = normalise_folder(requested)
        except RuleError:
            raise wire.invalid_parameter("folder") from None
        if not is_within(folder, grant.folder):
            raise wire.outside_grant(
                "folder",
                f"This credential allows uploads only into {grant.folder} "
                f"(profile '{grant.profile}').",
                "grant-folder",
            )
    for name, attribute, widening, rule in _GRANT_FLAGS:
        granted = "true" if getattr(grant, attribute) else "false"
        if name not in fields:
            effective[name] = granted
        elif fields[name] == widening != granted:
            raise wire.outside_grant(
                name, f"This credential's profile '{grant.profile}' {rule}.", "grant-flag"
            )
    if grant.tags:
        requested_tags = [t.strip() for t in fields.get("tags", "").split(",") if t.strip()]
        effective["tags"] = ",".join(dict.fromkeys([*grant.tags, *requested_tags]))
    return effective


def check_grant(grant: UploadGrant, file_name: str, file_type: FileType, size: int) -> None:
    """The file itself under a v1 grant: its type (by name and by content) and its size."""
    if extension_of(file_name) not in grant.types or file_type.extension not in grant.types:
        raise wire.outside_grant(
            "file",
            "This file type is not allowed. This credential's profile "
            f"'{grant.profile}' allows only: {', '.join(grant.types)}.",
            "grant-type",
        )
    limit = grant.limit_for(file_type.kind)
    if size > limit:
        raise wire.outside_grant(
            "file",
            f"The file size exceeds limits. This credential allows at most {format_size(limit)} "
            f"for this type; the file is {format_size(size)}.",
            "grant-size",
        )


def file_type_of(upload: UploadedFile, file_name: str) -> FileType:
    extension = extension_of(file_name)
    found = detect(upload.head, extension)
    if found is None:
        allowed = extension is not None and extension in ALLOWED
        raise wire.content_mismatch() if allowed else wire.unsupported_file_type()
    return found


def run_checks(expression: str, fields: Mapping[str, str], values: dict[str, checks.Value]) -> None:
    try:
        tree = checks.parse(expression)
    except checks.ChecksSyntaxError:
        raise wire.checks_syntax() from None
    for name, value in fields.items():
        values[f"request.{name}"] = value
    if "tags" in fields:
        values["request.tags"] = tuple(t.strip() for t in fields["tags"].split(","))
    if fields.get("customMetadata"):
        with contextlib.suppress(ValueError, AttributeError, RecursionError):
            for key, value in json.loads(fields["customMetadata"]).items():
                values[f"request.customMetadata.{key}"] = (
                    value if isinstance(value, int) and not isinstance(value, bool) else str(value)
                )
    if not checks.evaluate(tree, values):
        raise wire.checks_failed()


def file_url(base_url: str, file_path: str, transformation: str | None = None) -> str:
    """Where the upload API serves a stored file (``transformation``: a named one of it, as
    ImageKit puts it in the path: ``/files/tr:n-.../<path>``)."""
    prefix = f"/files/{transformation}" if transformation else "/files"
    return base_url + prefix + quote(file_path)


def response_body(
    stored: StoredFile, options: Options, file_type: FileType, base_url: str
) -> dict[str, Any]:
    """ImageKit's upload response for a stored file."""
    url = file_url(base_url, stored.file_path)
    image = file_type.kind is Kind.IMAGE
    found: Probe = stored.media or {}  # type: ignore[assignment]
    body: dict[str, Any] = {
        "fileId": stored.file_id,
        "name": stored.name,
        "size": stored.size,
        "versionInfo": {"id": stored.version_id, "name": f"Version {stored.version}"},
        "filePath": stored.file_path,
        "url": url,
        "fileType": "image" if image else "non-image",
        "AITags": None,
    }
    if found.get("thumbnail"):
        body["thumbnailUrl"] = file_url(base_url, stored.file_path, THUMBNAIL_SEGMENT)
    if stored.width is not None and stored.height is not None:
        body["width"], body["height"] = stored.width, stored.height
    for name in _MEDIA_FIELDS:
        if name in found:
            body[name] = found[name]
    if stored.description is not None:
        body["description"] = stored.description
    wanted = options.response_fields
    if "tags" in wanted:
        body["tags"] = stored.tags
    if "customCoordinates" in wanted:
        body["customCoordinates"] = stored.custom_coordinates
    if "isPrivateFile" in wanted:
        body["isPrivateFile"] = stored.is_private_file
    if "isPublished" in wanted:
        body["isPublished"] = stored.is_published
    if "customMetadata" in wanted:
        body["customMetadata"] = stored.custom_metadata or {}
    if "embeddedMetadata" in wanted:
        body["embeddedMetadata"] = found.get("embeddedMetadata", {})
    if "metadata" in wanted:
        body["metadata"] = {
            "format": format_name(file_type.extension),
            **found.get("metadata", {}),
            "size": stored.size,
        }
    return body


async def upload(
    ctx: UploadContext,
    *,
    version: Literal[1, 2],
    content_type: str | None,
    content_length: str | None,
    authorization: str | None,
    body: AsyncIterator[bytes],
    base_url: str,
) -> dict[str, Any]:
    """Handle one upload request; returns ImageKit's JSON or raises ``wire.UploadError``."""
    boundary = boundary_of(content_type)
    hard_cap = max(ctx.limits.max_size, ctx.limits.max_video_size) + ENVELOPE_BYTES
    try:
        declared = content_length or ""
        if declared.isascii() and declared.isdigit() and int(declared) > hard_cap:
            raise wire.file_too_large()
        basic = basic_auth_key(authorization)
        owner = basic is not None and ctx.keys.ring.by_private_key(basic.encode()) is not None
        metered = None if owner else ctx.in_flight.meter(body)
        try:
            form: UploadForm = await read_form(
                metered or body,
                boundary=boundary,
                tmp_dir=ctx.storage.work,
                cap_for_head=cap_for_head(ctx.limits),
            )
        finally:
            if metered is not None:
                metered.release()
    except wire.UploadError as exc:
        exc.body_unread = True
        raise
    try:
        fields = form.fields
        if version == 1:
            authenticated = await authenticate_v1(ctx, basic, fields)
        else:
            authenticated = await authenticate_v2(ctx, basic, fields)
        grant = authenticated.grant
        if form.file is None:
            raise wire.missing_parameter("file")
        if grant is not None:
            fields = within_grant(fields, grant)
        options = parse_options(fields)
        if form.file.url is not None:
            fetched = await ctx.remote.fetch(
                form.file.url, ctx.storage.work, cap_for_head(ctx.limits)
            )
            form.file.path.unlink(missing_ok=True)
            form.file = fetched
        if form.file.size == 0:
            raise wire.invalid_parameter("file")
        file_type = file_type_of(form.file, options.file_name)
        if form.file.size > ctx.limits.limit_for(file_type.kind):
            raise wire.file_too_large()
        if grant is not None:
            check_grant(grant, options.file_name, file_type, form.file.size)
        found = await ctx.media.probe(form.file.path, file_type)
        if "checks" in fields:
            values: dict[str, checks.Value] = {
                "file.size": form.file.size,
                "file.mime": file_type.mime,
            }
            for name in ("width", "height", *_MEDIA_FIELDS):
                if name in found:
                    values[f"mediaMetadata.{name}"] = found[name]
            run_checks(fields["checks"], fields, values)
        try:
            stored = ctx.storage.commit(
                form.file.path,
                folder=options.folder,
                name=clean_name(options.file_name),
                unique=options.unique,
                overwrite=options.overwrite,
                details={
                    "size": form.file.size,
                    "mime": file_type.mime,
                    "extension": file_type.extension,
                    "width": found.get("width"),
                    "height": found.get("height"),
                    "media": dict(found) or None,
                    "tags": options.tags,
                    "custom_coordinates": options.custom_coordinates,
                    "custom_metadata": options.custom_metadata,
                    "description": options.description,
                    "is_private_file": options.private,
                    "is_published": options.published,
                },
            )
        except NameTaken:
            raise wire.name_clash() from None
        except OSError as exc:
            log.error("storage failed", extra={"errno": errno.errorcode.get(exc.errno or 0)})
            raise wire.storage_failed() from None
        await _report(ctx, authenticated, stored, options, file_type, base_url)
        return response_body(stored, options, file_type, base_url)
    finally:
        if form.file is not None:
            with contextlib.suppress(FileNotFoundError):
                form.file.path.unlink()


async def _report(
    ctx: UploadContext,
    authenticated: Authenticated,
    stored: StoredFile,
    options: Options,
    file_type: FileType,
    base_url: str,
) -> None:
    """After the file is stored: its webhook event into the outbox (delivered in the
    background), and the credential's receipt into the ledger. Neither fails the upload."""
    if ctx.events is None and authenticated.key is None:
        return
    now_ms = int(ctx.clock() * 1000)
    event_id = None
    if ctx.events is not None:
        event_id = str(uuid.uuid4())
        everything = replace(options, response_fields=_RESPONSE_FIELDS)
        answer = response_body(stored, everything, file_type, base_url)
        body = file_event(
            event_id,
            answer,
            mime=stored.mime,
            new_version=stored.version > 1,
            issued=authenticated.issued,
            now_ms=now_ms,
        )
        await ctx.events.enqueue(event_id, body)
    if authenticated.key is not None:
        file = {
            "fileId": stored.file_id,
            "versionId": stored.version_id,
            "name": stored.name,
            "filePath": stored.file_path,
            "size": stored.size,
            "url": file_url(base_url, stored.file_path),
        }
        receipt = Receipt(authenticated.issued, now_ms, file, event_id)
        try:
            await ctx.ledger.note_use(authenticated.key, receipt.to_json(), ctx.receipt_retention)
        except LedgerUnavailable:
            log.warning("a receipt could not be recorded", extra={"file_id": stored.file_id})
