"""One upload, start to finish, stage by stage: receive the form, authenticate (and burn the
credential), settle the options, accept the file, inspect it, store it, report it, answer.

The order follows ImageKit's (``shared/spec/imagekit-upload-protocol.md`` §8): a credential is
burned as soon as its signature proves it genuine, before anything else can fail, so a failed
upload still uses it up. Each stage hands the next a typed value; any stage may refuse with
``messages.UploadError``, and whatever was written is removed.
"""

import contextlib
import errno
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from app.core.imagekit.filetypes import ALLOWED, FileType, Kind, extension_of
from app.core.imagekit.rules import PlanLimits, clean_name
from app.core.logs import get_logger
from app.upload_api import checks, messages
from app.upload_api.answer import MEDIA_FIELDS, response_body
from app.upload_api.authenticate import (
    Authenticated,
    authenticate_v1,
    authenticate_v2,
    basic_auth_key,
)
from app.upload_api.context import UploadContext
from app.upload_api.detect import detect
from app.upload_api.fields import JsonFields, check_json_fields
from app.upload_api.form import ENVELOPE_BYTES, UploadedFile, UploadForm, boundary_of, read_form
from app.upload_api.media import Probe
from app.upload_api.options import UploadOptions, check_grant, parse_options, within_grant
from app.upload_api.report import event_note, report
from app.upload_api.storage import NameTaken, StorageUnavailable, StoredFile, details_of

log = get_logger("upload_api")


@dataclass(frozen=True, slots=True)
class UploadRequest:
    """What the route hands the pipeline: the request's headers that matter, and its body."""

    version: Literal[1, 2]
    content_type: str | None
    content_length: str | None
    authorization: str | None
    body: AsyncIterator[bytes]
    #: Where stored files are served from (the ``url`` of the answer).
    base_url: str


@dataclass(frozen=True, slots=True)
class Accepted:
    """A file that passed every check that needs no reading of its content: on disk, not empty,
    of an allowed type that its content confirms, within the limits and the grant."""

    file: UploadedFile
    file_type: FileType


async def upload(ctx: UploadContext, request: UploadRequest) -> dict[str, Any]:
    """Handle one upload request; returns ImageKit's JSON or raises ``messages.UploadError``."""
    form, basic = await receive(ctx, request)
    try:
        json_fields = check_json_fields(form.fields)  # before the credential is burned
        if request.version == 1:
            authenticated = await authenticate_v1(ctx, basic, form.fields)
        else:
            authenticated = await authenticate_v2(ctx, basic, form.fields)
        if form.file is None:
            raise messages.missing_parameter("file")
        fields = form.fields
        if authenticated.grant is not None:
            fields = within_grant(fields, authenticated.grant)
        options = parse_options(fields, json_fields)
        form.file = await fetch_if_remote(ctx, form.file)
        accepted = accept(ctx, form.file, options, authenticated)
        found = await inspect(ctx, accepted, options, fields, json_fields)
        if ctx.events is not None and not await ctx.events.has_room():
            raise messages.events_unavailable()  # never stored without its event
        note = None if ctx.events is None else event_note(ctx, authenticated, request.base_url)
        form.file = None  # the storage takes the file (and removes it if it fails)
        stored = await store(ctx, accepted, options, found, note)
        await report(ctx, authenticated, stored, request.base_url)
        return response_body(
            stored,
            accepted.file_type,
            request.base_url,
            wanted=options.response_fields,
            extensions=options.extensions,
        )
    finally:
        if form.file is not None:
            with contextlib.suppress(FileNotFoundError):
                form.file.path.unlink()


async def receive(ctx: UploadContext, request: UploadRequest) -> tuple[UploadForm, str | None]:
    """The form, its file streamed to the temporary area under the size caps, and the Basic
    auth user (the private key) if any. A refusal here is marked ``body_unread``: the route
    drains or closes."""
    hard_cap = max(ctx.limits.max_size, ctx.limits.max_video_size) + ENVELOPE_BYTES
    try:
        boundary = boundary_of(request.content_type)
        declared = request.content_length or ""
        if declared.isascii() and declared.isdigit() and int(declared) > hard_cap:
            raise messages.file_too_large()
        basic = basic_auth_key(request.authorization)
        owner = basic is not None and ctx.keys.ring.by_private_key(basic.encode()) is not None
        metered = None if owner else ctx.in_flight.meter(request.body)
        try:
            form = await read_form(
                metered or request.body,
                boundary=boundary,
                new_temp=ctx.storage.new_temp,
                cap_for_head=cap_for_head(ctx.limits),
            )
        finally:
            if metered is not None:
                metered.release()
    except messages.UploadError as exc:
        exc.body_unread = True
        raise
    return form, basic


async def fetch_if_remote(ctx: UploadContext, file: UploadedFile) -> UploadedFile:
    """``file`` given as a URL, fetched now that the upload is authenticated; else as it came."""
    if file.url is None:
        return file
    fetched = await ctx.remote.fetch(file.url, ctx.storage.new_temp, cap_for_head(ctx.limits))
    file.path.unlink(missing_ok=True)
    return fetched


def accept(
    ctx: UploadContext, file: UploadedFile, options: UploadOptions, authenticated: Authenticated
) -> Accepted:
    """The file's type (by its name and its first bytes) and size, against the plan's limits
    and a v1 credential's grant."""
    if file.size == 0:
        raise messages.invalid_parameter("file")
    file_type = file_type_of(file, options.file_name)
    if file.size > ctx.limits.limit_for(file_type.kind):
        raise messages.file_too_large()
    if authenticated.grant is not None:
        check_grant(authenticated.grant, options.file_name, file_type, file.size)
    return Accepted(file, file_type)


async def inspect(
    ctx: UploadContext,
    accepted: Accepted,
    options: UploadOptions,
    fields: Mapping[str, str],
    json_fields: JsonFields,
) -> Probe:
    """What the file holds, as far as the answer asks (its metadata only when the upload's
    ``responseFields`` or its webhook event carry it), and the upload's ``checks`` (parsed
    before the credential was burned) evaluated on it."""
    everything = ctx.events is not None or not options.response_fields.isdisjoint(READ_FIELDS)
    file = accepted.file
    found = await ctx.media.probe(
        file.path, accepted.file_type, everything=everything, head=file.head
    )
    if json_fields.check_tree is not None:
        values: dict[str, checks.Value] = {
            "file.size": accepted.file.size,
            "file.mime": accepted.file_type.mime,
        }
        for name in ("width", "height", *MEDIA_FIELDS):
            if name in found:
                values[f"mediaMetadata.{name}"] = found[name]
        run_checks(json_fields.check_tree, fields, json_fields.custom_metadata, values)
    return found


async def store(
    ctx: UploadContext,
    accepted: Accepted,
    options: UploadOptions,
    found: Probe,
    event: dict[str, Any] | None,
) -> StoredFile:
    """Publish the file under its folder and name, with what is known of it (and its webhook
    event's note, if events are sent)."""
    file, file_type = accepted.file, accepted.file_type
    details = details_of(
        file.size,
        file_type,
        found,
        file.head,
        tags=options.tags,
        custom_coordinates=options.custom_coordinates,
        custom_metadata=options.custom_metadata,
        description=options.description,
        is_private_file=options.private,
        is_published=options.published,
        event=event,
    )
    try:
        return await ctx.storage.commit(
            file.path,
            folder=options.folder,
            name=clean_name(options.file_name),
            unique=options.unique,
            overwrite=options.overwrite,
            details=details,
            head=file.head,
        )
    except NameTaken:
        raise messages.name_clash() from None
    except StorageUnavailable as exc:
        log.error("storage failed", extra={"cause": str(exc)})
        raise messages.storage_failed() from None
    except OSError as exc:
        log.error("storage failed", extra={"errno": errno.errorcode.get(exc.errno or 0)})
        raise messages.storage_failed() from None


# -- the rules the stages apply --------------------------------------------------------------

#: The answer's fields that only reading the whole file tells (the media workers).
READ_FIELDS: Final = frozenset({"metadata", "embeddedMetadata"})


def cap_for_head(limits: PlanLimits) -> Callable[[bytes], int]:
    """The streaming size cap, from the file's first bytes: video gets the video limit."""

    def cap(head: bytes) -> int:
        found = detect(head, None)
        is_video = found is not None and found.kind is Kind.VIDEO
        return limits.max_video_size if is_video else limits.max_size

    return cap


def file_type_of(upload: UploadedFile, file_name: str) -> FileType:
    extension = extension_of(file_name)
    found = detect(upload.head, extension)
    if found is None:
        allowed = extension is not None and extension in ALLOWED
        raise messages.content_mismatch() if allowed else messages.unsupported_file_type()
    return found


def run_checks(
    tree: checks.Node,
    fields: Mapping[str, str],
    custom_metadata: Mapping[str, Any] | None,
    values: dict[str, checks.Value],
) -> None:
    """``checks`` on the file's values and the request's fields (custom metadata by field)."""
    for name, value in fields.items():
        values[f"request.{name}"] = value
    if "tags" in fields:
        values["request.tags"] = tuple(t.strip() for t in fields["tags"].split(","))
    for key, value in (custom_metadata or {}).items():
        values[f"request.customMetadata.{key}"] = (
            value if isinstance(value, int) and not isinstance(value, bool) else str(value)
        )
    if not checks.evaluate(tree, values):
        raise messages.checks_failed()
