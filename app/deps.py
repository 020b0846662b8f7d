"""Dependencies, as ``Annotated`` aliases. An endpoint without ``CallerDep`` is public."""

from typing import Annotated, TypedDict, cast

from fastapi import Depends, Request

from app.callers import Authenticator, Caller, RequestInfo, authenticate
from app.clock import Clock
from app.config import Settings
from app.keys import KeyRing
from app.policy import Policy


class State(TypedDict):
    """What the lifespan hands every request."""

    settings: Settings
    keys: KeyRing
    policy: Policy
    clock: Clock
    authenticators: tuple[Authenticator, ...]


async def _settings(request: Request) -> Settings:
    return cast(Settings, request.state.settings)


async def _keys(request: Request) -> KeyRing:
    return cast(KeyRing, request.state.keys)


async def _policy(request: Request) -> Policy:
    return cast(Policy, request.state.policy)


async def _clock(request: Request) -> Clock:
    return cast(Clock, request.state.clock)


async def _caller(request: Request) -> Caller:
    chain = cast(tuple[Authenticator, ...], request.state.authenticators)
    info = RequestInfo(request.headers, request.client.host if request.client else None)
    return await authenticate(chain, info)


SettingsDep = Annotated[Settings, Depends(_settings)]
KeysDep = Annotated[KeyRing, Depends(_keys)]
PolicyDep = Annotated[Policy, Depends(_policy)]
ClockDep = Annotated[Clock, Depends(_clock)]
CallerDep = Annotated[Caller, Depends(_caller)]
