"""The credential ledger in Redis, shared by every replica (imported only where Redis is
configured: the Redis client is not loaded otherwise)."""

import logging
from typing import Final

from app.core.ledger import (
    FORGOTTEN_MARGIN_MS,
    Burn,
    LedgerUnavailable,
    remember_for,
)
from app.core.redis_client import FAILURES, close, connect
from app.core.redis_url import key_prefix, target_of

log = logging.getLogger("upload_auth.ledger")


#: Every script's first step: the epoch (KEYS[1]), begun as ARGV[1] if the ledger has none (it
#: forgot). Sets ``epoch`` and ``forgotten`` (1 if it had to begin one).
_EPOCH: Final = """
local epoch = redis.call('GET', KEYS[1])
local forgotten = 0
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
  forgotten = 1
end
"""

#: Where a failover may promote a replica (Sentinel, Cluster), the epoch is also bound to the
#: primary's replication history (KEYS[2] holds the history it was last seen in). Replication is
#: asynchronous: a promoted replica may lack the last burns its old primary acknowledged, and
#: it starts a new history (``master_replid``), so a new history begins a new epoch.
_HISTORY: Final = """
local history = string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)')
local known = redis.call('GET', KEYS[2])
if known ~= history then
  if known and forgotten == 0 then
    epoch = ARGV[1]
    redis.call('SET', KEYS[1], epoch)
    forgotten = 1
  end
  redis.call('SET', KEYS[2], history)
end
"""

#: Burn a credential, read its grant and check the epoch, atomically. KEYS: epoch key, history
#: key, used key, grant key. ARGV: the epoch to begin if there is none, remember-for seconds.
#: Returns {fresh 0/1, epoch, forgotten 0/1, grant or nil}.
_BURN: Final = """
local fresh = redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[2])
return {fresh and 1 or 0, epoch, forgotten, redis.call('GET', KEYS[4])}
"""

#: Record a grant and read the epoch: the issuer learns of a loss before it hands out a
#: credential the ledger would refuse. KEYS: epoch key, history key, grant key. ARGV: the epoch
#: to begin if there is none, the grant, remember-for seconds. Returns {epoch, forgotten 0/1}.
_RECORD: Final = """
redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[3])
return {epoch, forgotten}
"""

#: Readiness: begin a new epoch if the ledger has none (it forgot while nobody used it).
#: KEYS: epoch key, history key. ARGV: the epoch to begin. Returns 1 if it had to begin one.
_CHECK_EPOCH: Final = "return forgotten\n"

_FORGOTTEN: Final = (
    "the credential ledger had lost its data (Redis restarted without persistence, flushed, "
    "or a failover promoted a replica): credentials issued before the new epoch are refused, "
    "and clients fetch new ones"
)


def _script(body: str, *, bound: bool) -> str:
    """A ledger script: the epoch first (and its history where failovers happen), then
    ``body``."""
    return _EPOCH + (_HISTORY if bound else "") + body


def _bytes(value: bytes | str | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


class RedisLedger:
    """Redis, shared by every replica.

    Its client survives a Redis restart (``app.core.redis_client``). The cause of an outage is
    logged once, at warning, when it begins, and again when it ends.
    """

    def __init__(self, url: str, *, timeout: float = 1.0, bound: bool | None = None) -> None:
        """``bound``: the epoch bound to the primary's replication history; by default where
        a failover may promote a replica (Sentinel, Cluster)."""
        self.redis = connect(url, timeout=timeout)
        prefix = key_prefix(url)  # the ledger's keys (app.core.ledger), tagged in a Cluster
        self.epoch_key = prefix + "epoch"
        self.history_key = prefix + "epoch-history"
        self.used, self.grants, self.receipts = (
            prefix + p for p in ("used:", "grant:", "receipt:")
        )
        #: Written (briefly) by readiness: a Redis that refuses writes is not ready.
        self.probe_key = prefix + "probe"
        if bound is None:
            bound = target_of(url).kind != "server"
        self.burn_script = self.redis.register_script(_script(_BURN, bound=bound))
        self.epoch_script = self.redis.register_script(_script(_CHECK_EPOCH, bound=bound))
        self.record_script = self.redis.register_script(_script(_RECORD, bound=bound))
        self.down: str | None = None

    def _failed(self, exc: BaseException) -> LedgerUnavailable:
        cause = f"{type(exc).__name__}: {exc}"[:200]
        if self.down is None:
            log.warning("credential ledger (Redis) unavailable", extra={"cause": cause})
        self.down = cause
        return LedgerUnavailable(type(exc).__name__)

    def _answered(self) -> None:
        if self.down is not None:
            log.warning("credential ledger (Redis) answers again", extra={"cause": self.down})
            self.down = None

    async def start(self, now_ms: int) -> None:
        try:
            await self.redis.set(self.epoch_key, str(now_ms), nx=True)
        except FAILURES as exc:
            raise self._failed(exc) from None
        self._answered()

    def _epoch(self, epoch: bytes | str, forgotten: int) -> int:
        """A script's answer about the epoch, after Redis answered: the loss said once."""
        self._answered()
        if forgotten:
            log.warning(_FORGOTTEN, extra={"epoch_ms": int(epoch)})
        return int(epoch)

    async def record(self, key: str, grant: bytes, ttl: int, *, now_ms: int) -> int:
        try:
            epoch, forgotten = await self.record_script(
                keys=[self.epoch_key, self.history_key, self.grants + key],
                args=[now_ms + FORGOTTEN_MARGIN_MS, grant, remember_for(ttl)],
            )
        except FAILURES as exc:
            raise self._failed(exc) from None
        return self._epoch(epoch, forgotten)

    async def burn(self, key: str, ttl: int, *, now_ms: int) -> Burn:
        keys = [self.epoch_key, self.history_key, self.used + key, self.grants + key]
        try:
            fresh, epoch, forgotten, grant = await self.burn_script(
                keys=keys, args=[now_ms + FORGOTTEN_MARGIN_MS, remember_for(ttl)]
            )
        except FAILURES as exc:
            raise self._failed(exc) from None
        return Burn(bool(fresh), self._epoch(epoch, forgotten), grant)

    async def ping(self, now_ms: int | None = None) -> bool:
        """Whether Redis answers; with ``now_ms``, also whether it takes a write (a Redis at its
        ``maxmemory`` refuses them, and every burn with them) and begin a new epoch (with the
        margin) if the ledger has none, as a burn would."""
        try:
            if now_ms is None:
                await self.redis.ping()
            else:
                await self.redis.set(self.probe_key, str(now_ms), px=10_000)
                if await self.epoch_script(
                    keys=[self.epoch_key, self.history_key], args=[now_ms + FORGOTTEN_MARGIN_MS]
                ):
                    log.warning(_FORGOTTEN, extra={"epoch_ms": now_ms + FORGOTTEN_MARGIN_MS})
        except FAILURES as exc:
            self._failed(exc)
            return False
        self._answered()
        return True

    async def note_use(self, key: str, receipt: bytes, ttl: int) -> None:
        try:
            await self.redis.set(self.receipts + key, receipt, ex=remember_for(ttl))
        except FAILURES as exc:
            raise self._failed(exc) from None
        self._answered()

    async def lookup(self, key: str) -> tuple[bytes | None, bytes | None]:
        try:
            grant, receipt = await self.redis.mget([self.grants + key, self.receipts + key])
        except FAILURES as exc:
            raise self._failed(exc) from None
        self._answered()
        return _bytes(grant), _bytes(receipt)

    async def close(self) -> None:
        await close(self.redis)
