"""The credential routes without FastAPI's per-request machinery.

``GET /v1/auth``, ``GET /auth`` and ``POST /v2/token`` are the hot path: a credential is fetched
before every upload. Profiling (``bench/inproc.py --profile``) showed FastAPI's routing and
dependency solving costing more than everything the requests actually do (authentication,
limits, policy, signing, audit), so these three are served here, as plain ASGI, by the same
``CredentialService`` the FastAPI routes call, with the same validation (the same pydantic
types), the same problems and the same answers. The FastAPI routes stay: they make the OpenAPI
document, and the tests compare both fronts on the same requests. Everything else passes
through untouched.
"""

import json
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import parse_qsl

from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import errors, schemas
from app.audit import AuditContext
from app.callers import RequestInfo
from app.deps import CREDENTIAL_METHODS, CREDENTIAL_ROUTES
from app.fastjson import dumps
from app.handlers import is_json, problem_response, unexpected, validation_problem
from app.logs import request_id_var
from app.middleware import AUDIT_KEY, ROUTE_KEY, declared_too_large
from app.service import CredentialService

ROUTES: Final = {(CREDENTIAL_METHODS[v], path): v for path, v in CREDENTIAL_ROUTES.items()}
_TOKEN_REQUEST: Final = TypeAdapter[Any](schemas.TokenRequest)
#: What the union answers for any body this accepts: a file-shaped body (``extra="forbid"``, so
#: no ``uploadPayload``) is the union's ``file`` tag. Without the union's discriminator, a Python
#: callback that needs the JSON as Python objects first, a good request takes half the time.
_FILE_REQUEST: Final = schemas.FileTokenRequest.__pydantic_validator__
_HEADERS: Final = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]


class FastPath:
    """Serve the credential routes directly; pass every other request to ``app``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        on_refusal: Callable[[AuditContext, errors.Problem], None],
        body_limit: int,
    ) -> None:
        self.app = app
        self.on_refusal = on_refusal
        #: ``BodyLimit``'s limit, which stands behind this layer: the same answers for the
        #: bodies read here (a GET /v1/auth passes neither layer's checks: it reads no body).
        self.body_limit = body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        version = (
            ROUTES.get((scope.get("method", ""), scope.get("path", "")))
            if scope["type"] == "http"
            else None
        )
        if version is None:
            await self.app(scope, receive, send)
            return
        if version == "v2" and declared_too_large(scope, self.body_limit):
            await problem_response(errors.BodyTooLarge())(scope, receive, send)
            return
        scope[ROUTE_KEY] = scope["path"]
        service: CredentialService = scope["state"]["service"]
        context = scope[AUDIT_KEY] = AuditContext(version)
        headers = Headers(scope=scope)
        try:
            if version == "v2":  # in FastAPI's order: the body is read and decoded, and its
                # type checked (the route's first dependency), before the caller is asked for
                raw = await _read(receive, self.body_limit)
                content_type = headers.get("content-type")
                if content_type is None or not is_json(content_type):
                    raise errors.UnsupportedMediaType()
                decoded = _decode(raw)
            client = scope.get("client")
            info = RequestInfo(headers, client[0] if client else None, request_id_var.get())
            caller = await service.caller(info, context)
            if version == "v1":
                query = _v1_query(scope)
                body = await service.v1(caller, context, query.publicKey, query.profile)
            else:
                request = _validated(decoded, content_type)
                body = await service.v2(caller, context, request)
        except errors.Problem as problem:
            self.on_refusal(context, problem)
            await problem_response(problem)(scope, receive, send)
            return
        except _Invalid as invalid:
            self.on_refusal(context, invalid.problem)
            await problem_response(invalid.problem, **invalid.extra)(scope, receive, send)
            return
        except Exception as exc:  # a bug: answered as FastAPI's error layer answers one
            await unexpected(exc)(scope, receive, send)
            return
        payload = dumps(body)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_HEADERS, (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})


class _Invalid(Exception):
    """A request that fails validation: its problem and the problem's extra members."""

    def __init__(self, raw: list[Any], content_type: str | None) -> None:
        super().__init__()
        self.problem, self.extra = validation_problem(raw, content_type)


_NO_QUERY: Final = schemas.V1Query()


def _v1_query(scope: Scope) -> schemas.V1Query:
    """The query as the route's own model validates it (Starlette's parsing: blank values
    kept, the last of repeated names wins)."""
    query: bytes = scope.get("query_string", b"")
    if not query:  # the usual request: nothing to parse
        return _NO_QUERY
    try:
        return schemas.V1Query.model_validate(
            dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True))
        )
    except ValidationError as exc:
        raise _Invalid(
            [
                {**e, "loc": ("query", *e["loc"])}
                for e in exc.errors(include_input=False, include_url=False)
            ],
            None,
        ) from None


async def _read(receive: Receive, limit: int) -> bytes:
    """The whole body, or BodyTooLarge once it passes ``limit`` bytes (as ``BodyLimit``)."""
    chunks = []
    seen = 0
    more = True
    while more:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise errors.BadRequest()
        chunk = message.get("body", b"")
        seen += len(chunk)
        if seen > limit:
            raise errors.BodyTooLarge()
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


class _Json:
    """A decoded body that the route's model has yet to validate."""

    __slots__ = ("data",)

    def __init__(self, data: Any) -> None:
        self.data = data


_NO_BODY: Final = _Json(None)


def _decode(raw: bytes) -> Any:
    """A body declared JSON as FastAPI reads it before anything else: MalformedJson if it is
    not JSON. A good file-shaped body comes back already validated, by the file shape's own
    validator in one pass (the usual request); anything else as ``_Json``."""
    if not raw:
        return _NO_BODY
    try:
        return _FILE_REQUEST.validate_json(raw)
    except ValidationError:
        pass  # not that shape, or refused: the route's own two steps give the route's answer
    try:
        return _Json(json.loads(raw))
    except ValueError:
        raise errors.MalformedJson() from None
    except RecursionError:  # nested deeper than Python parses: FastAPI's answer, a 400
        raise errors.BadRequest() from None


def _validated(decoded: Any, content_type: str | None) -> Any:
    """The decoded body as the route's pydantic type, with the route's problems."""
    if not isinstance(decoded, _Json):
        return decoded
    if decoded is _NO_BODY:
        raise _Invalid(
            [{"loc": ("body",), "type": "missing", "msg": "Field required"}], content_type
        )
    try:
        return _TOKEN_REQUEST.validate_python(decoded.data, from_attributes=True)  # as FastAPI
    except ValidationError as exc:
        raw_errors = [
            {**e, "loc": ("body", *e["loc"])}
            for e in exc.errors(include_input=False, include_url=False)
        ]
        raise _Invalid(raw_errors, content_type) from None
