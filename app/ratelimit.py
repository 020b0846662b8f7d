"""Rate limits and byte quotas per caller, with the ``limits`` library.

Per caller (per client address for unauthenticated development use): a request limit for v1,
another for v2, and on v2 a byte quota per window to which each credential's declared size is
charged. Sliding-window counters, in process memory by default, in Redis when configured so that
every replica draws on one budget.

When Redis does not answer, the check falls back to this process's own memory (logged, counted
in ``upload_auth_rate_limit_fallbacks``): credentials keep flowing, and abuse stays bounded, at
most the per-caller budget times the number of replicas, until Redis is back. Refusing every
request while Redis is down would turn a cache outage into a full outage; the used-token store of
the upload API, which guards security rather than cost, fails closed instead.
"""

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError

from app import errors
from app.logs import get_logger
from app.policy import parse_size

log = get_logger("ratelimit")
_QUOTA_RE: Final = re.compile(r"^\s*([^/]+?)\s*/\s*(.+?)\s*$")


def parse_rate(text: str) -> RateLimitItem:
    """A request rate such as ``"120/minute"`` (``limits`` notation); ValueError if not one."""
    item = parse(text)
    if item.amount < 1:
        raise ValueError("the amount must be at least 1")
    return item


def parse_quota(text: str) -> RateLimitItem:
    """A byte quota such as ``"2gb/hour"`` or ``"500mb/10 minutes"``."""
    match = _QUOTA_RE.match(text)
    if not match:
        raise ValueError("a quota is <size>/<period>, e.g. 2gb/hour")
    size = parse_size(match.group(1))
    return parse_rate(f"{size}/{match.group(2)}")


@dataclass(frozen=True, slots=True)
class Refusal:
    retry_after: int


class RateLimiter:
    def __init__(self, redis_url: str | None, on_fallback: Callable[[], None]) -> None:
        self.local = SlidingWindowCounterRateLimiter(MemoryStorage())
        self.shared = None
        if redis_url is not None:
            storage = RedisStorage(
                "async+" + redis_url,
                implementation="redispy",
                wrap_exceptions=True,
                key_prefix="upload-auth:limits",
                socket_timeout=1,
                socket_connect_timeout=1,
            )
            self.shared = SlidingWindowCounterRateLimiter(storage)
        self.on_fallback = on_fallback

    async def redis_status(self) -> str | None:
        """``ok`` or ``unreachable`` when Redis is configured; None when it is not."""
        if self.shared is None:
            return None
        try:
            return "ok" if await self.shared.storage.check() else "unreachable"
        except StorageError:
            return "unreachable"

    async def hit(self, item: RateLimitItem, *key: str, cost: int = 1) -> Refusal | None:
        """Charge ``cost`` to ``key``; a Refusal (with Retry-After) if over the limit."""
        try:
            return await self._hit(self.shared or self.local, item, key, cost)
        except StorageError:
            log.warning("rate-limit storage unavailable; using this process's memory")
            self.on_fallback()
            return await self._hit(self.local, item, key, cost)

    @staticmethod
    async def _hit(
        limiter: SlidingWindowCounterRateLimiter,
        item: RateLimitItem,
        key: tuple[str, ...],
        cost: int,
    ) -> Refusal | None:
        if await limiter.hit(item, *key, cost=cost):
            return None
        stats = await limiter.get_window_stats(item, *key)
        return Refusal(max(1, math.ceil(stats.reset_time - time.time())))


class Throttle:
    """The configured limits, applied per caller: requests for v1 and v2, bytes for v2."""

    def __init__(
        self,
        limiter: RateLimiter,
        *,
        v1: str | None,
        v2: str | None,
        quota: str | None,
        on_limited: Callable[[str, str], None],
    ) -> None:
        self.limiter = limiter
        self.items = {"v1": parse_rate(v1) if v1 else None, "v2": parse_rate(v2) if v2 else None}
        self.quota = parse_quota(quota) if quota else None
        self.on_limited = on_limited

    async def request(self, version: str, caller_key: str) -> None:
        item = self.items[version]
        if item is not None:
            await self._charge(item, (version, caller_key), 1, version, "requests")

    async def bytes(self, caller_key: str, size: int) -> None:
        if self.quota is not None:
            await self._charge(self.quota, ("bytes", caller_key), size, "v2", "bytes")

    async def _charge(
        self, item: RateLimitItem, key: tuple[str, ...], cost: int, version: str, kind: str
    ) -> None:
        refusal = await self.limiter.hit(item, *key, cost=cost)
        if refusal is not None:
            self.on_limited(version, kind)
            what = f"{version} credentials" if kind == "requests" else "bytes"
            raise errors.RateLimited(
                f"at most {item.amount} {what} per {item.get_expiry()} seconds",
                retry_after=refusal.retry_after,
            )
