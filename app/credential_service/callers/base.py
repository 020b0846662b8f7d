"""The authenticator protocol and the chain. Pure: a request arrives as headers and an address."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from app.core import errors
from app.core.folders import identity

#: The longest caller id a provider or a session check may name.
MAX_CALLER_ID: Final = 256


def profile_set(names: list[str] | None) -> frozenset[str] | None:
    """A configured profile list as the set a caller may use; None (unset): every profile."""
    return frozenset(names) if names is not None else None


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: its id as the method knows it, and the namespace that makes it
    an identity no other method can produce. ``profiles`` None means any profile."""

    id: str
    method: str
    namespace: str
    profiles: frozenset[str] | None = None
    #: Whose budget the rate limits charge; the caller's identity unless set.
    rate_key: str | None = None
    #: May read the receipts of credentials issued to any caller (a role given in config).
    reads_all_receipts: bool = False
    #: ``namespace:id``: what folders, receipts, audit lines and limits know it by (made once:
    #: an API key's caller is made at start-up, and asked for on every request).
    identity: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "identity", identity(self.namespace, self.id))

    def may_use(self, profile: str) -> bool:
        return self.profiles is None or profile in self.profiles

    @property
    def limit_key(self) -> str:
        return self.rate_key or self.identity


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """The parts of an HTTP request an authenticator may look at."""

    headers: Mapping[str, str]
    client_host: str | None
    request_id: str | None = None


class Authenticator(Protocol):
    """One way of recognising callers."""

    name: str

    async def authenticate(self, request: RequestInfo) -> Caller | None:
        """The caller; None if this method does not apply; or raise a Problem (401, 502, 503)."""
        ...


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class DevelopmentAuthenticator:
    """Development mode only: everyone is the caller ``dev``, rate-limited per client address."""

    name = "development"

    async def authenticate(self, request: RequestInfo) -> Caller | None:
        return Caller(
            id="dev", method=self.name, namespace="dev", rate_key=f"ip:{request.client_host}"
        )


async def authenticate(chain: Sequence[Authenticator], request: RequestInfo) -> Caller:
    """The first caller any authenticator in the chain recognises, else 401."""
    for authenticator in chain:
        caller = await authenticator.authenticate(request)
        if caller is not None:
            return caller
    raise errors.Unauthenticated()
