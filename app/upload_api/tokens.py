"""The used-token store: every credential is accepted at most once, across all replicas.

A credential is burned the first time it is seen with a valid signature, even if the upload then
fails (ImageKit's rule), and remembered until it could no longer be accepted anyway: its own
expiry plus the clock leeway. Keys are hashes, so the store never holds a usable credential.

In memory by default (one process); Redis when configured, shared by every replica
(``SET key 1 NX EX ttl``: atomic, first writer wins). If Redis cannot answer, ``burn`` raises
``StoreUnavailable`` and the upload is refused with a 503: a possibly replayed token is never
accepted.
"""

import hashlib
import heapq
from typing import Final, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.clock import Clock, unix_now

KEY_PREFIX: Final = "upload-auth:used:"
#: No credential is remembered longer than this (a misconfigured signer could ask for years).
MAX_REMEMBER_SECONDS: Final = 7 * 24 * 3600


class StoreUnavailable(Exception):
    """The store cannot say whether a token was used."""


def token_key(kind: str, *parts: str) -> str:
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
    return f"{KEY_PREFIX}{kind}:{digest}"


class TokenStore(Protocol):
    async def burn(self, key: str, ttl: int) -> bool:
        """Mark ``key`` used for ``ttl`` seconds; True if it was not used before."""
        ...

    async def ping(self) -> bool:
        """Whether the store can answer now."""
        ...

    async def close(self) -> None: ...


class MemoryTokenStore:
    """One process's memory: for a single replica and for development."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.expiry: dict[str, int] = {}
        self.heap: list[tuple[int, str]] = []

    def _purge(self, now: int) -> None:
        while self.heap and self.heap[0][0] <= now:
            when, key = heapq.heappop(self.heap)
            if self.expiry.get(key) == when:
                del self.expiry[key]

    async def burn(self, key: str, ttl: int) -> bool:
        now = unix_now(self.clock)
        self._purge(now)
        if key in self.expiry:
            return False
        until = now + max(1, min(ttl, MAX_REMEMBER_SECONDS))
        self.expiry[key] = until
        heapq.heappush(self.heap, (until, key))
        return True

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None

    def __len__(self) -> int:
        return len(self.expiry)


class RedisTokenStore:
    """Redis, shared by every replica."""

    def __init__(self, url: str, *, timeout: float = 1.0) -> None:
        self.redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry_on_timeout=False,
        )

    async def burn(self, key: str, ttl: int) -> bool:
        try:
            created = await self.redis.set(
                key, b"1", nx=True, ex=max(1, min(ttl, MAX_REMEMBER_SECONDS))
            )
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(type(exc).__name__) from None
        return bool(created)

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        await self.redis.aclose()
