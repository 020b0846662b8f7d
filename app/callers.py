"""Who is asking for a credential: the caller-authentication hook.

An ``Authenticator`` turns a request's headers into a ``Caller`` (an id, and the profiles it may
use) or refuses. The service asks each configured authenticator in turn and takes the first that
recognises the request. Development mode adds one that lets everyone in as ``dev``. Pure: the
request is reduced to a mapping of headers and a client address before it gets here.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from app import errors


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller. ``profiles`` None means any profile."""

    id: str
    method: str
    profiles: frozenset[str] | None = None

    def may_use(self, profile: str) -> bool:
        return self.profiles is None or profile in self.profiles


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """The parts of an HTTP request an authenticator may look at."""

    headers: Mapping[str, str]
    client_host: str | None


class Authenticator(Protocol):
    """One way of recognising callers."""

    name: str

    async def authenticate(self, request: RequestInfo) -> Caller | None:
        """The caller, None if this method does not apply, or raise ``errors.Unauthenticated``."""
        ...


class DevelopmentAuthenticator:
    """Development mode only: everyone is the caller ``dev``."""

    name = "development"

    async def authenticate(self, request: RequestInfo) -> Caller | None:  # noqa: ARG002
        return Caller(id="dev", method=self.name)


async def authenticate(chain: Sequence[Authenticator], request: RequestInfo) -> Caller:
    """The first caller any authenticator in the chain recognises, else 401."""
    for authenticator in chain:
        caller = await authenticator.authenticate(request)
        if caller is not None:
            return caller
    raise errors.Unauthenticated()
