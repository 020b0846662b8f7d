"""Dependencies, as ``Annotated`` aliases. An endpoint without ``CallerDep`` is public."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypedDict, TypeVar, cast

from fastapi import Depends, Request
from pydantic import BaseModel
from starlette.routing import BaseRoute

from app.core import errors
from app.core.http.middleware import AUDIT_KEY
from app.core.http.problems import is_json
from app.core.keysource import KeySource
from app.core.logs import request_id_var
from app.core.settings import Settings
from app.credential_service.audit import AuditContext
from app.credential_service.callers import Caller, RequestInfo
from app.credential_service.metrics import Metrics
from app.credential_service.service import CredentialService

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Issues:
    """What a credential route issues: the version (as audits, limits and metrics name it) and
    the service method that does it, which both fronts call with the route's validated query
    model or body."""

    version: Literal["v1", "v2", "url"]
    issue: Callable[[CredentialService, Caller, AuditContext, Any], Awaitable[Any]]
    #: A model the fast path may validate the body as straight from its JSON, in one pass:
    #: what the route's body type gives for every body this model accepts (the tests compare
    #: both fronts). Anything it refuses takes the route's own two steps.
    fast_body: type[BaseModel] | None = None


def issues(
    version: Literal["v1", "v2", "url"],
    issue: Callable[[CredentialService, Caller, AuditContext, Any], Awaitable[Any]],
    *,
    fast_body: type[BaseModel] | None = None,
) -> Callable[[Endpoint], Endpoint]:
    """Mark an endpoint as a credential route: the fast path serves it, the audit follows it."""

    def mark(endpoint: Endpoint) -> Endpoint:
        endpoint.issues = Issues(version, issue, fast_body)  # type: ignore[attr-defined]
        return endpoint

    return mark


def issues_of(route: BaseRoute | None) -> Issues | None:
    """What a route issues, or None if it is not a credential route."""
    return cast(Issues | None, getattr(getattr(route, "endpoint", None), "issues", None))


class State(TypedDict):
    """What the lifespan hands every request."""

    settings: Settings
    keys: KeySource
    service: CredentialService
    metrics: Metrics


async def _service(request: Request) -> CredentialService:
    return cast(CredentialService, request.state.service)


def audit_context(request: Request) -> AuditContext | None:
    """The audit context of a credential request (made on first use), else None."""
    context = request.scope.get(AUDIT_KEY)
    if context is None:
        marked = issues_of(request.scope.get("route"))
        if marked is None:
            return None
        context = request.scope[AUDIT_KEY] = AuditContext(marked.version)
    return cast(AuditContext, context)


async def _context(request: Request) -> AuditContext:
    context = audit_context(request)
    if context is None:  # pragma: no cover - only credential routes ask for it
        raise RuntimeError("not a credential route")
    return context


ServiceDep = Annotated[CredentialService, Depends(_service)]
ContextDep = Annotated[AuditContext, Depends(_context)]


async def _caller(request: Request, context: ContextDep, service: ServiceDep) -> Caller:
    info = RequestInfo(
        request.headers, request.client.host if request.client else None, request_id_var.get()
    )
    return await service.caller(info, context)


CallerDep = Annotated[Caller, Depends(_caller)]


async def _json_body(request: Request) -> None:
    """A credential request's body must be declared JSON: a body of another type (or none)
    can be sent cross-site without a CORS preflight, so it could spend a signed-in user's
    budgets from another site's page."""
    content_type = request.headers.get("content-type")
    if content_type is None or not is_json(content_type):
        raise errors.UnsupportedMediaType()


#: Declare before ``CallerDep``: the type is checked before the caller is asked for.
JsonBodyDep = Annotated[None, Depends(_json_body)]
