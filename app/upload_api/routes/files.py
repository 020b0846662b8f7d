"""``GET /files/...``: stored files and their thumbnails, with headers that keep active content
inert; private files only through URLs signed in ImageKit's scheme."""

from email.utils import parsedate_to_datetime
from typing import Final
from urllib.parse import quote

from fastapi import APIRouter, Request, Response

from app.core import signed_urls
from app.core.clock import unix_now
from app.core.imagekit.filetypes import ALLOWED
from app.upload_api import messages
from app.upload_api.answer import THUMBNAIL_SEGMENT
from app.upload_api.context import UploadContext, context_of
from app.upload_api.storage import Storage, StoredFile, is_active_content, new_id

router = APIRouter()

#: Served files can never run script on this origin, whatever they contain.
FILE_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cross-Origin-Resource-Policy": "cross-origin",
    "Cache-Control": "public, max-age=300",
}


@router.get("/files/{file_path:path}")
async def serve_file(request: Request, file_path: str) -> Response:
    """A stored file, with headers that keep active content inert. A private file only through
    a URL signed in ImageKit's scheme (``ik-t``, ``ik-s``): 401 when unsigned, tampered with or
    expired. Ranges (video seeking), ``ETag``/``Last-Modified`` and conditional requests."""
    context = context_of(request)
    thumbnail = file_path.startswith(THUMBNAIL_SEGMENT + "/")
    if thumbnail:
        file_path = file_path.removeprefix(THUMBNAIL_SEGMENT)
    storage = context.storage
    try:
        stored = await storage.lookup("/" + file_path.removeprefix("/"))
    except OSError:  # the store cannot answer now
        raise messages.storage_failed() from None
    if stored is None:
        raise messages.file_not_found()
    headers = dict(FILE_HEADERS)
    if stored.is_private_file:
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        relative = raw_path.decode("latin-1").split("/files/", 1)[-1]
        verdict = signed_urls.verify(
            context.keys.ring,
            relative,
            request.scope.get("query_string", b"").decode("latin-1"),
            unix_now(context.clock),
        )
        if verdict is not signed_urls.Verdict.VALID:
            raise _URL_REFUSALS[verdict]()
        headers["Cache-Control"] = "private, max-age=60"
    derived = None
    try:
        if thumbnail:
            derived, media_type = await _thumbnail(context, stored), "image/webp"
            headers["ETag"] = f'"{stored.version_id}-thumbnail"'
        else:
            file_type = ALLOWED.get(stored.extension)
            if file_type is None or is_active_content(file_type):
                disposition = f"attachment; filename*=UTF-8''{quote(stored.name)}"
                headers["Content-Disposition"] = disposition
            headers["ETag"] = f'"{stored.version_id}"'
            media_type = stored.mime
        if await _not_modified(request, headers["ETag"], storage, stored, derived):
            kept = ("ETag", "Cache-Control")
            return Response(status_code=304, headers={k: headers[k] for k in kept})
        return await storage.respond(
            stored,
            derived=derived,
            media_type=media_type,
            headers=headers,
            range_header=_range_of(request, headers["ETag"]),
            method=request.method,
        )
    except OSError:  # the store cannot answer now
        raise messages.storage_failed() from None


THUMBNAIL: Final = "thumbnail.webp"


async def _thumbnail(context: UploadContext, stored: StoredFile) -> str:
    """The stored file's thumbnail (WebP, its derived name), made by a media worker on the
    first request and kept per version; 404 for a file of which none can be made, 503
    (``storage_failed``) while the storage refuses to keep it."""
    file_type = ALLOWED.get(stored.extension)
    if file_type is None or not (stored.media or {}).get("thumbnail"):
        raise messages.file_not_found()
    storage = context.storage
    if await storage.has_derived(stored, THUMBNAIL):
        return THUMBNAIL
    made = storage.spool.work / f"thumbnail-{new_id()}.webp"
    try:
        async with storage.local_copy(stored) as content:
            done = await context.media.thumbnail(content, made, file_type.kind)
        if done == "unwritable":
            raise messages.storage_failed()
        if done != "made":
            raise messages.file_not_found()
        await storage.keep_derived(stored, THUMBNAIL, made)
    finally:
        made.unlink(missing_ok=True)
    return THUMBNAIL


_URL_REFUSALS: Final = {
    signed_urls.Verdict.UNSIGNED: messages.unsigned_private_url,
    signed_urls.Verdict.INVALID: messages.invalid_url_signature,
    signed_urls.Verdict.EXPIRED: messages.expired_url,
}


def _range_of(request: Request, etag: str) -> str | None:
    """The request's ``Range``, unless its ``If-Range`` names another version (then the whole
    file: RFC 9110 13.1.5)."""
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip().removeprefix("W/") != etag:
        return None
    return request.headers.get("range")


async def _not_modified(
    request: Request, etag: str, storage: Storage, stored: StoredFile, derived: str | None
) -> bool:
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
    modified = await storage.modified(stored, derived)
    return modified is not None and int(modified) <= when
