"""The front layers: request context (id, access line) and the request body limit, as pure
ASGI middleware, and ``Fronted``, the FastAPI app that puts its front layers before its own."""

import re
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core import errors
from app.core.entropy import random16
from app.core.http.problems import problem_response
from app.core.logs import event, get_logger, request_id_var

#: Where a front that routes without Starlette's router (the fast path) names the route.
ROUTE_KEY: Final = "upload_auth.route"
#: Where a credential request's audit context lives in the ASGI scope (the access line reads
#: the caller from it). The request's own scope: lifespan state may be shared between requests.
AUDIT_KEY: Final = "upload_auth.audit"
_REQUEST_ID_RE: Final = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
access_log = get_logger("access")


def path_in_app(scope: Scope) -> str:
    """The request's path below the app's mount point (its ``root_path`` taken off): what a
    front that routes without Starlette's router matches."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class RequestContext:
    """Give every request an id (propagating a sane ``X-Request-ID``) and log one access line.

    The line has method, the matched route's path template (never the raw path or query, which
    are the client's to choose), status, duration and request id.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        log_access: bool = True,
        observe: Callable[[str, str, int, float], None] | None = None,
    ) -> None:
        self.app = app
        self.log_access = log_access
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = incoming if incoming and _REQUEST_ID_RE.match(incoming) else random16().hex()
        id_header = request_id.encode("latin-1")
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", id_header)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or scope.get(ROUTE_KEY, "(unmatched)")
            if self.observe is not None:
                self.observe(route, scope["method"], status, elapsed)
            if self.log_access:
                line = {
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 100_000) / 100,  # as logs' "ts"
                }
                caller = getattr(scope.get(AUDIT_KEY), "caller", None)
                if caller is not None:
                    line["caller"] = caller
                event(access_log, "request", line)
            request_id_var.reset(token)


def declared_too_large(scope: Scope, limit: int) -> bool:
    """Whether the request declares a body over ``limit`` bytes (or a Content-Length that is
    not a number)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return not value.isdigit() or int(value) > limit
    return False


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with a 413 problem, read or declared. (The
    credential fast path, in front of this layer, applies the same limit to the bodies it
    reads.)"""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if declared_too_large(scope, self.limit):
            await problem_response(errors.BodyTooLarge())(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise errors.BodyTooLarge()
            return message

        await self.app(scope, limited_receive, send)


def cors(
    origins: Sequence[str], *, expose: Sequence[str], credentials: bool = False
) -> list[Middleware]:
    """The CORS layer for browser clients on ``origins`` (none: no layer): GET and POST, the
    headers they send, ``expose`` readable."""
    if not origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(origins),
            allow_credentials=credentials,
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", "x-request-id"],
            expose_headers=list(expose),
            max_age=600,
        )
    ]


class Fronted(FastAPI):
    """FastAPI with the app's own front layers (``front``, outermost first) outside FastAPI's
    error layers rather than inside them (where ``add_middleware`` puts them): a request passes
    through two fewer layers before reaching the credential fast path, and a 500 from FastAPI
    still gets its request id, its CORS headers and its access line."""

    def __init__(self, front: Sequence[Middleware], **options: Any) -> None:
        super().__init__(**options)
        self._front = tuple(front)
        telemetry = options.get("telemetry") or {}
        #: FastAPI's native telemetry is off for good: its entry point only passes requests on.
        self._direct = all(telemetry.get(kind) is False for kind in ("tracing", "metrics", "logs"))

    def build_middleware_stack(self) -> ASGIApp:
        app = super().build_middleware_stack()
        for cls, args, kwargs in reversed(self._front):
            app = cls(app, *args, **kwargs)
        return app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """With telemetry switched off (both apps switch it off), an HTTP request goes straight
        to the middleware stack, as ``FastAPI.__call__`` and ``Starlette.__call__`` would send
        it, without their two coroutines and checks (docs/performance.md); anything else takes
        their way."""
        if (
            self._direct
            and scope["type"] == "http"
            and self.middleware_stack is not None
            and not self.root_path
        ):
            scope["app"] = self
            await self.middleware_stack(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
