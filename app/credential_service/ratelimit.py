"""Rate limits and byte quotas per caller, with the ``limits`` library.

Per caller (per client address for unauthenticated development use): a request limit for v1,
another for v2, and on v2 a byte quota per window to which each credential's declared size is
charged. Sliding-window counters, in process memory by default, in Redis when configured so that
every replica draws on one budget.

In Redis the counters are ``limits``' (its sliding-window-counter strategy and Redis storage). In
memory they are ``SlidingWindows`` below, the same algorithm on a plain dict, tested against
``limits`` and measured against its async memory storage (string keys, an asyncio lock, expiry
timers) in docs/performance.md.

When Redis does not answer, the check falls back to this process's own memory (logged, counted
in ``upload_auth_rate_limit_fallbacks``): credentials keep flowing, and abuse stays bounded, at
most the per-caller budget times the number of replicas, until Redis is back. Refusing every
request while Redis is down would turn a cache outage into a full outage; the used-token store of
the upload API, which guards security rather than cost, fails closed instead.
"""

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from limits import RateLimitItem
from limits.aio.storage import RedisClusterStorage, RedisSentinelStorage, RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError

from app.core import errors
from app.core.logs import get_logger

log = get_logger("ratelimit")


@dataclass(frozen=True, slots=True)
class OverLimit:
    """A charge a limit did not allow (nothing was charged): when to try again."""

    retry_after: int


class SlidingWindows:
    """Sliding-window counters in this process's memory, as ``limits`` keeps them in Redis.

    Time is cut into fixed windows of the limit's length; a charge is allowed while the current
    window's count, plus the previous window's count weighted by the share of it the sliding
    window still covers, plus the charge, stays within the limit. Counters of windows that have
    slid out are swept once per ``SWEEP_SECONDS``, so idle callers cost no memory.
    """

    SWEEP_SECONDS: Final = 60.0

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        # (seconds, amount, key) -> [window number, previous window's count, current count]
        self._counts: dict[tuple[int, int, tuple[str, ...]], list[int]] = {}
        self._sweep_at = 0.0

    def hit(self, item: RateLimitItem, key: tuple[str, ...], cost: int) -> OverLimit | None:
        """Charge ``cost`` to ``key`` under ``item``; an OverLimit (nothing charged) if over."""
        return self.charge(item.amount, item.get_expiry(), key, cost)

    def charge(self, limit: int, seconds: int, key: tuple[str, ...], cost: int) -> OverLimit | None:
        """``hit`` with the limit's amount and window length already read from its item (the
        ``limits`` item's attributes cost more than the arithmetic here)."""
        now = self.clock()
        if now >= self._sweep_at:
            self._sweep(now)
        window = now // seconds
        elapsed = now - window * seconds
        slot = (seconds, limit, key)
        entry = self._counts.get(slot)
        if entry is None:
            previous = current = 0
        elif entry[0] == window:  # the usual case: a caller seen in this window
            previous, current = entry[1], entry[2]
        elif entry[0] == window - 1:
            previous, current = entry[2], 0
        else:
            previous = current = 0
        # int() is the floor of a count that is never negative
        if cost > limit or int(previous * (seconds - elapsed) / seconds + current) + cost > limit:
            return OverLimit(_retry_after(previous, current, elapsed, seconds, limit - cost))
        if entry is not None and entry[0] == window:
            entry[2] = current + cost
        else:
            self._counts[slot] = [int(window), previous, current + cost]
        return None

    def _sweep(self, now: float) -> None:
        self._sweep_at = now + self.SWEEP_SECONDS
        stale = [slot for slot, (window, *_) in self._counts.items() if window < now // slot[0] - 1]
        for slot in stale:
            del self._counts[slot]


def _retry_after(previous: int, current: int, elapsed: float, seconds: int, room: int) -> int:
    """Whole seconds until a charge leaving ``room`` (the limit less the charge) fits, that is
    until the weighted count drops below ``room + 1`` (the count is rounded down)."""
    if room < 0:  # a charge larger than the whole budget never fits: a window is the honest wait
        return seconds
    if current <= room:  # the previous window's share has to shrink
        wait = seconds * (1 - (room + 1 - current) / previous) - elapsed
    else:  # this window alone is too full: the next one, once this one's share has shrunk
        wait = seconds - elapsed + seconds * (1 - (room + 1) / current)
    return max(1, math.floor(wait) + 1)


#: What the shared storage raises when Redis cannot answer: the library's wrapped error, and
#: what redis-py's asyncio clients let through from a connection torn down by a failover
#: (``app.core.redis_client.FAILURES``).
_STORAGE_FAILURES: Final = (StorageError, AttributeError, TypeError)

#: The limits library's storage for each kind of Redis (``app.core.redis_client.Target``).
_STORAGES: Final = {
    "server": RedisStorage,
    "sentinel": RedisSentinelStorage,
    "cluster": RedisClusterStorage,
}


class RateLimiter:
    def __init__(
        self,
        redis_url: str | None,
        on_fallback: Callable[[], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.local = SlidingWindows(clock)  # Redis keeps its own time
        self.shared = None
        if redis_url is not None:
            from app.core.redis_url import limits_uri, target_of

            kind = target_of(redis_url).kind
            storage = _STORAGES[kind](
                limits_uri(redis_url),
                implementation="redispy",
                wrap_exceptions=True,
                key_prefix="upload-auth:limits",
                socket_timeout=1,
                socket_connect_timeout=1,
                # The primary only: a replica's counts lag, and a limit read there is loose.
                **({"use_replicas": False} if kind == "sentinel" else {}),
            )
            self.shared = SlidingWindowCounterRateLimiter(storage)
        self.on_fallback = on_fallback

    async def close(self) -> None:
        """Close the shared storage's connections (the redis-py clients ``limits`` made for
        it: the server's, a Sentinel primary's and replica's, and the sentinels')."""
        if self.shared is None:
            return
        bridge = getattr(self.shared.storage, "bridge", None)
        for name in ("storage", "storage_replica"):
            client = getattr(bridge, name, None)
            if client is not None:
                await client.aclose()
        for sentinel in getattr(getattr(bridge, "sentinel", None), "sentinels", ()):
            await sentinel.aclose()

    async def redis_status(self) -> str | None:
        """``ok`` or ``unreachable`` when Redis is configured; None when it is not."""
        if self.shared is None:
            return None
        try:
            return "ok" if await self.shared.storage.check() else "unreachable"
        except _STORAGE_FAILURES:
            return "unreachable"

    async def hit(self, item: RateLimitItem, *key: str, cost: int = 1) -> OverLimit | None:
        """Charge ``cost`` to ``key``; an OverLimit (with Retry-After) if over the limit."""
        if self.shared is None:
            return self.local.hit(item, key, cost)
        try:
            if await self.shared.hit(item, *key, cost=cost):
                return None
            stats = await self.shared.get_window_stats(item, *key)
        except _STORAGE_FAILURES:
            log.warning("rate-limit storage unavailable; using this process's memory")
            self.on_fallback()
            return self.local.hit(item, key, cost)
        return OverLimit(max(1, math.ceil(stats.reset_time - time.time())))


class Throttle:
    """The configured limits, applied per caller: requests for v1 and v2, bytes for v2."""

    def __init__(
        self,
        limiter: RateLimiter,
        *,
        v1: RateLimitItem | None,
        v2: RateLimitItem | None,
        quota: RateLimitItem | None,
        urls: RateLimitItem | None = None,
        on_limited: Callable[[str, str], None],
    ) -> None:
        self.limiter = limiter
        self.items = {"v1": v1, "v2": v2, "url": urls}
        self.quota = quota
        #: Each limit's (amount, window seconds), read once for the in-memory charges.
        self.sizes = {
            id(item): (item.amount, item.get_expiry())
            for item in (*self.items.values(), self.quota)
            if item is not None
        }
        self.on_limited = on_limited

    def request(self, version: str, caller_key: str) -> Awaitable[None] | None:
        """Charge one ``version`` request to the caller. In memory the charge is made here and
        None comes back: no coroutine to create and await.
        With Redis, an awaitable that makes the charge. A refusal raises ``RateLimited``."""
        item = self.items[version]
        if item is None:
            return None
        if self.limiter.shared is None:
            limit, seconds = self.sizes[id(item)]
            refusal = self.limiter.local.charge(limit, seconds, (version, caller_key), 1)
            self._check(refusal, item, version)
            return None
        return self._shared(item, version, (version, caller_key), 1)

    def bytes(self, version: str, caller_key: str, size: int) -> Awaitable[None] | None:
        """Charge ``size`` bytes to the caller's quota, as ``request`` charges a request."""
        quota = self.quota
        if quota is None:
            return None
        if self.limiter.shared is None:
            limit, seconds = self.sizes[id(quota)]
            refusal = self.limiter.local.charge(limit, seconds, ("bytes", caller_key), size)
            self._check(refusal, quota, version, "bytes")
            return None
        return self._shared(quota, version, ("bytes", caller_key), size, "bytes")

    async def _shared(
        self,
        item: RateLimitItem,
        version: str,
        key: tuple[str, ...],
        cost: int,
        kind: str = "requests",
    ) -> None:
        self._check(await self.limiter.hit(item, *key, cost=cost), item, version, kind)

    def _check(
        self, refusal: OverLimit | None, item: RateLimitItem, version: str, kind: str = "requests"
    ) -> None:
        if refusal is not None:
            raise self._refused(item, refusal, version, kind)

    def _refused(
        self, item: RateLimitItem, refusal: OverLimit, version: str, kind: str
    ) -> errors.RateLimited:
        self.on_limited(version, kind)
        what = f"{version} credentials" if kind == "requests" else "bytes"
        return errors.RateLimited(
            f"at most {item.amount} {what} per {item.get_expiry()} seconds",
            retry_after=refusal.retry_after,
        )
