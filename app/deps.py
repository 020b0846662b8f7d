"""Dependencies, as ``Annotated`` aliases. An endpoint without ``CallerDep`` is public."""

from typing import Annotated, Final, TypedDict, cast

import httpx
from fastapi import Depends, Request

from app.audit import Audit, AuditContext
from app.callers import Authenticator, Caller, RequestInfo, authenticate
from app.clock import Clock
from app.config import Settings
from app.keys import KeyRing
from app.keysource import KeySource
from app.logs import request_id_var
from app.metrics import Metrics
from app.policy import Policy
from app.ratelimit import Throttle

_AUDIT_KEY: Final = "upload_auth.audit"
#: The credential routes, by path template, and the credential version each issues.
CREDENTIAL_ROUTES: Final = {"/v1/auth": "v1", "/auth": "v1", "/v2/token": "v2"}


class State(TypedDict):
    """What the lifespan hands every request."""

    settings: Settings
    keys: KeySource
    policy: Policy
    clock: Clock
    authenticators: tuple[Authenticator, ...]
    http: httpx.AsyncClient
    metrics: Metrics
    audit: Audit
    throttle: Throttle


async def _settings(request: Request) -> Settings:
    return cast(Settings, request.state.settings)


async def _keys(request: Request) -> KeyRing:
    """The key ring as it is now (it may be reloaded between requests, never during one)."""
    return cast(KeySource, request.state.keys).ring


async def _policy(request: Request) -> Policy:
    return cast(Policy, request.state.policy)


async def _clock(request: Request) -> Clock:
    return cast(Clock, request.state.clock)


async def _audit(request: Request) -> Audit:
    return cast(Audit, request.state.audit)


async def _throttle(request: Request) -> Throttle:
    return cast(Throttle, request.state.throttle)


def audit_context(request: Request) -> AuditContext | None:
    """The audit context of a credential request (made on first use), else None."""
    # Kept in the request's own scope: lifespan state may be shared between requests.
    context = request.scope.get(_AUDIT_KEY)
    if context is None:
        route = getattr(request.scope.get("route"), "path", None)
        version = CREDENTIAL_ROUTES.get(route or "")
        if version is None:
            return None
        context = request.scope[_AUDIT_KEY] = AuditContext(version)
    return cast(AuditContext, context)


async def _context(request: Request) -> AuditContext:
    context = audit_context(request)
    if context is None:  # pragma: no cover - only credential routes ask for it
        raise RuntimeError("not a credential route")
    return context


async def _caller(request: Request) -> Caller:
    chain = cast(tuple[Authenticator, ...], request.state.authenticators)
    info = RequestInfo(
        request.headers, request.client.host if request.client else None, request_id_var.get()
    )
    caller = await authenticate(chain, info)
    context = audit_context(request)
    if context is not None:
        context.caller, context.method = caller.id, caller.method
    return caller


SettingsDep = Annotated[Settings, Depends(_settings)]
KeysDep = Annotated[KeyRing, Depends(_keys)]
PolicyDep = Annotated[Policy, Depends(_policy)]
ClockDep = Annotated[Clock, Depends(_clock)]
AuditDep = Annotated[Audit, Depends(_audit)]
ThrottleDep = Annotated[Throttle, Depends(_throttle)]
ContextDep = Annotated[AuditContext, Depends(_context)]
CallerDep = Annotated[Caller, Depends(_caller)]
