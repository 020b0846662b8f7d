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

import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl

from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.datastructures import Headers
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core import errors
from app.core.fastjson import dumps
from app.core.http.middleware import AUDIT_KEY, ROUTE_KEY, declared_too_large
from app.core.http.problems import (
    NO_STORE,
    is_json,
    problem_response,
    unexpected,
    validation_problem,
)
from app.core.logs import request_id_var
from app.credential_service.audit import AuditContext
from app.credential_service.callers import RequestInfo
from app.credential_service.dependencies import Issues, issues_of
from app.credential_service.service import CredentialService

if TYPE_CHECKING:
    from fastapi._compat import ModelField

_HEADERS: Final = [
    (b"content-type", b"application/json"),
    (NO_STORE[0].lower().encode(), NO_STORE[1].encode()),
]


@dataclass(frozen=True, slots=True)
class CredentialRoute:
    """A credential route as the fast path serves it, read from the FastAPI route itself."""

    path: str
    issues: Issues
    #: The route's query model (v1), validated from the query string as FastAPI does.
    query: type[BaseModel] | None
    #: The route's body field (v2): FastAPI's own validation of the decoded body.
    body: "ModelField | None"
    #: The query model of an empty query string (the usual request), validated once.
    no_query: BaseModel | None = None


def credential_routes(routes: Sequence[BaseRoute]) -> dict[tuple[str, str], CredentialRoute]:
    """The table of credential routes, by (method, path), from the routes that ``issues``
    marks: their paths, methods, query models and body fields."""
    table = {}
    for route in routes:
        marked = issues_of(route)
        if marked is None or not isinstance(route, APIRoute):
            continue
        models = [f.field_info.annotation for f in route.dependant.query_params]
        query: type[BaseModel] | None = None
        if models:
            first = models[0]
            if len(models) > 1 or not (isinstance(first, type) and issubclass(first, BaseModel)):
                raise TypeError(f"{route.path}: the fast path reads one query model, or none")
            query = first
        no_query = None
        if query is not None:
            with contextlib.suppress(ValidationError):  # unless it has required parameters
                no_query = query.model_validate({})
        for method in route.methods or ():
            table[(method, route.path)] = CredentialRoute(
                route.path, marked, query, route.body_field, no_query
            )
    return table


class FastPath:
    """Serve the credential routes directly; pass every other request to ``app``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Sequence[BaseRoute],
        on_refusal: Callable[[AuditContext, errors.Problem], None],
        body_limit: int,
    ) -> None:
        self.app = app
        self.routes = credential_routes(routes)
        if not self.routes:
            raise ValueError("the fast path was given no credential route")
        self.on_refusal = on_refusal
        #: ``BodyLimit``'s limit, which stands behind this layer: the same answers for the
        #: bodies read here (a GET /v1/auth passes neither layer's checks: it reads no body).
        self.body_limit = body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = (
            self.routes.get((scope.get("method", ""), scope.get("path", "")))
            if scope["type"] == "http"
            else None
        )
        if route is None:
            await self.app(scope, receive, send)
            return
        if route.body is not None and declared_too_large(scope, self.body_limit):
            await problem_response(errors.BodyTooLarge())(scope, receive, send)
            return
        scope[ROUTE_KEY] = route.path
        service: CredentialService = scope["state"]["service"]
        context = scope[AUDIT_KEY] = AuditContext(route.issues.version)
        headers = Headers(scope=scope)
        try:
            if route.body is not None:  # in FastAPI's order: the body is read and decoded,
                # and its type checked (the route's first dependency), before the caller
                raw = await _read(receive, self.body_limit)
                content_type = headers.get("content-type")
                if content_type is None or not is_json(content_type):
                    raise errors.UnsupportedMediaType()
                decoded = _decode(raw, route.issues.fast_body)
            client = scope.get("client")
            info = RequestInfo(headers, client[0] if client else None, request_id_var.get())
            caller = await service.caller(info, context)
            if route.body is not None:
                request = _validated(route.body, decoded, content_type)
            elif route.query is not None:
                request = _query(route, scope)
            else:  # pragma: no cover - every credential route has a query model or a body
                request = None
            body = await route.issues.issue(service, caller, context, request)
        except errors.Problem as problem:
            self.on_refusal(context, problem)
            await problem_response(problem)(scope, receive, send)
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


def _query(route: CredentialRoute, scope: Scope) -> BaseModel:
    """The query as the route's own model validates it (Starlette's parsing: blank values
    kept, the last of repeated names wins)."""
    query: bytes = scope.get("query_string", b"")
    if not query and route.no_query is not None:
        return route.no_query
    assert route.query is not None  # noqa: S101 - only called for routes with a query model
    try:
        return route.query.model_validate(
            dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True))
        )
    except ValidationError as exc:
        raise validation_problem(
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


def _decode(raw: bytes, fast_body: type[BaseModel] | None) -> Any:
    """A body declared JSON as FastAPI reads it before anything else: MalformedJson if it is
    not JSON. A body the route's ``fast_body`` accepts comes back validated in one pass (the
    usual request: for v2 the file shape, whose union member a Python discriminator would
    otherwise pick from the JSON as Python objects); anything else as ``_Json``."""
    if not raw:
        return _NO_BODY
    try:
        if fast_body is not None:
            return fast_body.__pydantic_validator__.validate_json(raw)
    except ValidationError:
        pass  # not that shape, or refused: the route's own two steps give the route's answer
    try:
        return _Json(json.loads(raw))
    except ValueError:
        raise errors.MalformedJson() from None
    except RecursionError:  # nested deeper than Python parses: FastAPI's answer, a 400
        raise errors.BadRequest() from None


def _validated(field: "ModelField", decoded: Any, content_type: str | None) -> Any:
    """The decoded body as the route's body field validates it, with the route's problems."""
    if not isinstance(decoded, _Json):
        return decoded
    if decoded is _NO_BODY:
        raise validation_problem(_MISSING_BODY, content_type)
    value, raw_errors = field.validate(decoded.data, loc=("body",))  # FastAPI's own call
    if raw_errors:
        raise validation_problem(raw_errors, content_type)
    return value


#: FastAPI's error for a required body that is absent, as pydantic words it.
_MISSING_BODY: Final = ValidationError.from_exception_data(
    "Field required", [{"type": "missing", "loc": ("body",), "input": None}]
).errors(include_url=False)
