"""``POST /api/v1/files/upload`` and ``/api/v2/files/upload``: the body handed to the pipeline,
and a refusal that comes before the whole body was read drained (bounded) so the client reads
the answer.

Served as plain ASGI in front of FastAPI (``UploadRoutes``, the innermost of the app's front
layers): FastAPI's routing, dependency solving and response classes cost an upload of a small
image more than its multipart parsing (docs/performance.md), and these two routes need none of
them. Every other request passes through untouched.
"""

import asyncio
from collections.abc import AsyncIterator
from functools import lru_cache
from typing import Final, Literal, cast

from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.fastjson import dumps
from app.core.http.middleware import ROUTE_KEY, path_in_app
from app.core.logs import event, get_logger
from app.core.settings import Settings
from app.upload_api import messages
from app.upload_api.context import UploadContext
from app.upload_api.pipeline import UploadRequest, upload
from app.upload_api.routes.refusals import refusal_response

log = get_logger("upload_api")

#: The upload routes, by path: the ImageKit API version each speaks.
ROUTES: Final[dict[str, Literal[1, 2]]] = {"/api/v1/files/upload": 1, "/api/v2/files/upload": 2}

#: A refusal decided before the whole body was read is sent after reading (and discarding) the
#: rest, so that clients which write the whole body before they read the answer (Node's fetch,
#: SDKs built on it) get the answer instead of a broken pipe; bounded: only a body declared at
#: most this large, for at most ``DRAIN_SECONDS``. Anything else is answered at once and the
#: connection closed.
DRAIN_BYTES: Final = 64 * 1024 * 1024
DRAIN_SECONDS: Final = 10.0

_JSON: Final = (b"content-type", b"application/json")
#: The request headers an upload reads.
_READ: Final = frozenset({b"content-type", b"content-length", b"authorization"})


class _Body:
    """The request body as chunks, knowing whether it has all arrived: a refusal decided at
    the last chunk has nothing left to drain."""

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
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

    async def drain(self, declared: str | None) -> bool:
        """Read and discard the rest of a declared body; whether it was all read in time."""
        if self.complete:
            return True
        declared = declared or ""
        if not (declared.isascii() and declared.isdigit()) or int(declared) > DRAIN_BYTES:
            return False
        try:
            async with asyncio.timeout(DRAIN_SECONDS):
                while True:
                    message = await self.receive()
                    if message["type"] != "http.request":
                        return False
                    if not message.get("more_body", False):
                        return True
        except TimeoutError:
            return False


class UploadRoutes:
    """The two upload routes, ahead of FastAPI; any other request goes on to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = path_in_app(scope)
        version = ROUTES.get(path) if scope["type"] == "http" else None
        if version is None:
            await self.app(scope, receive, send)
            return
        scope[ROUTE_KEY] = path
        if scope["method"] != "POST":
            await refusal_response(messages.method_not_allowed())(scope, receive, send)
            return
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name in _READ and name not in headers:
                headers[name] = value
        state = scope["state"]
        settings = cast(Settings, state["settings"])
        received = _Body(receive)
        request = UploadRequest(
            version=version,
            content_type=_text(headers.get(b"content-type")),
            content_length=_text(headers.get(b"content-length")),
            authorization=_text(headers.get(b"authorization")),
            body=received.chunks(),
            base_url=settings.public_url.rstrip("/") if settings.public_url else _base_url(scope),
        )
        try:
            body = await _upload(cast(UploadContext, state["upload"]), request, received)
        except messages.UploadError as refusal:
            await refusal_response(refusal)(scope, receive, send)
            return
        except Exception as exc:  # a bug: the client gets ImageKit's 500, the log the details
            log.error("unhandled error", exc_info=(type(exc), exc, exc.__traceback__))
            await refusal_response(messages.internal_error())(scope, receive, send)
            return
        event(
            log,
            "upload stored",
            {"version": version, "size": body["size"], "file_id": body["fileId"]},
        )
        answer = dumps(body)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [_JSON, (b"content-length", str(len(answer)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": answer})


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


async def _upload(ctx: UploadContext, request: UploadRequest, received: _Body) -> dict[str, object]:
    try:
        return await upload(ctx, request)
    except ClientDisconnect:
        log.info("client went away mid-upload")
        raise messages.malformed_body() from None
    except messages.UploadError as refusal:
        if refusal.body_unread and await received.drain(request.content_length):
            refusal.body_unread = False  # all read: the answer arrives, the connection stays
        raise


def _base_url(scope: Scope) -> str:
    """Where this request reached the service (Starlette's ``Request.base_url``), made once
    per scheme, host and root path."""
    host = None
    for name, value in scope["headers"]:
        if name == b"host":
            host = value
            break
    server = scope.get("server")
    return _base_url_of(
        scope["scheme"], host, tuple(server) if server else None, scope.get("root_path", "")
    )


@lru_cache(maxsize=64)
def _base_url_of(
    scheme: str, host: bytes | None, server: tuple[str, int] | None, root_path: str
) -> str:
    scope: Scope = {"type": "http", "scheme": scheme, "server": server, "root_path": root_path}
    scope["path"] = root_path + "/"
    scope["headers"] = [] if host is None else [(b"host", host)]
    return str(Request(scope).base_url).rstrip("/")
