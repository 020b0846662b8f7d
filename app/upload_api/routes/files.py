"""``GET /files/...``: stored files and their transformations, with headers that keep active content
inert; private files only through URLs signed in ImageKit's scheme.

Served as plain ASGI in front of FastAPI (``FileRoutes``), as the upload routes are: a rendition
served from the cache is a few system calls, and FastAPI's routing, dependency solving and
response class cost more than they do (docs/performance.md, #32).
"""

from email.utils import parsedate_to_datetime
from typing import Final
from urllib.parse import quote, unquote

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core import signed_urls
from app.core.clock import unix_now
from app.core.http.middleware import ROUTE_KEY, path_in_app
from app.core.imagekit.filetypes import ALLOWED
from app.core.imagekit.transformations import Plan, TransformationError, parse
from app.core.logs import get_logger
from app.upload_api import delivery, messages
from app.upload_api.context import UploadContext, context_of
from app.upload_api.routes.refusals import refusal_response
from app.upload_api.storage import Storage, StoredFile, is_active_content

#: The prefix of every served file's path, and the route's name in the access log.
PREFIX: Final = "/files/"
ROUTE: Final = "/files/{file_path:path}"

log = get_logger("upload_api")

#: Served files can never run script on this origin, whatever they contain.
FILE_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cross-Origin-Resource-Policy": "cross-origin",
    "Cache-Control": "public, max-age=300",
}


class FileRoutes:
    """``GET`` and ``HEAD`` of ``/files/...``, ahead of FastAPI; any other request goes on to
    ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = path_in_app(scope)
        if scope["type"] != "http" or not path.startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        scope[ROUTE_KEY] = ROUTE
        try:
            if scope["method"] not in ("GET", "HEAD"):
                raise messages.method_not_allowed()
            response = await serve_file(Request(scope, receive), path[len(PREFIX) :])
        except messages.UploadError as refusal:
            response = refusal_response(refusal)
        except Exception as exc:  # a bug: the client gets ImageKit's 500, the log the details
            log.error("unhandled error", exc_info=(type(exc), exc, exc.__traceback__))
            response = refusal_response(messages.internal_error())
        await response(scope, receive, send)


async def serve_file(request: Request, file_path: str) -> Response:
    """A stored file, with headers that keep active content inert, or an image transformed as
    the URL's ImageKit transformation asks (``/files/tr:w-300/...`` or ``?tr=w-300``, both
    chained when both are given). A private file only through a URL signed in ImageKit's
    scheme (``ik-t``, ``ik-s``): 401 when unsigned, tampered with or expired; so too a public
    file's transformation when the operator asks for signed transformations. Ranges (video
    seeking), ``ETag``/``Last-Modified`` and conditional requests."""
    context = context_of(request)
    file_path, plan = _transformation(context, request, file_path)
    storage = context.storage
    try:
        stored = await storage.lookup("/" + file_path.removeprefix("/"))
    except OSError:  # the store cannot answer now
        raise messages.storage_failed() from None
    if stored is None:
        raise messages.file_not_found()
    headers = dict(FILE_HEADERS)
    if stored.is_private_file or (plan is not None and context.delivery.signed_transformations):
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
        if stored.is_private_file:
            headers["Cache-Control"] = "private, max-age=60"
    derived = None
    try:
        if plan is not None:
            rendition = delivery.choose(
                stored,
                plan,
                request.headers.get("accept", ""),
                auto_avif=context.delivery.auto_avif,
            )
            await delivery.render(context, stored, rendition)
            derived, media_type = rendition.name, rendition.media_type
            headers["ETag"] = f'"{stored.version_id}-{derived.partition(".")[0][:16]}"'
            if rendition.by_accept:
                headers["Vary"] = "Accept"
        else:
            file_type = ALLOWED.get(stored.extension)
            if file_type is None or is_active_content(file_type):
                disposition = f"attachment; filename*=UTF-8''{quote(stored.name)}"
                headers["Content-Disposition"] = disposition
            headers["ETag"] = f'"{stored.version_id}"'
            media_type = stored.content_type
        if await _not_modified(request, headers["ETag"], storage, stored, derived):
            kept = ("ETag", "Cache-Control", "Vary")
            return Response(status_code=304, headers={k: headers[k] for k in kept if k in headers})
        response = await storage.respond(
            stored,
            derived=derived,
            media_type=media_type,
            headers=headers,
            range_header=_range_of(request, headers["ETag"]),
            method=request.method,
        )
    except OSError:  # the store cannot answer now
        raise messages.storage_failed() from None
    if "content-type" in response.headers:
        # as recorded: the framework would call any text/* UTF-8, whatever its bytes are
        response.headers["content-type"] = media_type
    return response


def _transformation(
    context: UploadContext, request: Request, file_path: str
) -> tuple[str, Plan | None]:
    """The file's path without its transformation segment (``tr:.../``), and the plan of the
    transformation in the path and the query's ``tr`` together (None: none asked, or
    ``orig-true``: the original)."""
    parts = []
    first, slash, rest = file_path.partition("/")
    if first.startswith("tr:") and slash:
        parts.append(first[3:])
        file_path = rest
    for pair in request.scope.get("query_string", b"").decode("latin-1").split("&"):
        if pair.startswith("tr="):
            parts.append(unquote(pair[3:]))
    if not parts:
        return file_path, None
    try:
        plan = parse(":".join(parts), context.delivery.named)
    except TransformationError as exc:
        raise messages.bad_transformation(str(exc), unsupported=exc.unsupported) from None
    return file_path, None if plan.original else plan


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
