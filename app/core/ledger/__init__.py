"""The credential ledger, shared by the credential service and the upload API.

It holds four things, each under a hashed key, so it never holds a usable credential:

- **grants**: what each v1 credential permits (profile, folder, types, sizes, flags, caller),
  written by the credential service when it signs, read by the upload API when the credential
  is used; for a v2 credential, only who it was issued to (its receipt's first half). A v1
  signature covers only ``token + expire``; the grant is what binds the rest.
- **used credentials**: every credential is burned the first time it is seen with a valid
  signature, even if the upload then fails (ImageKit's rule), and remembered until it could no
  longer be accepted anyway: its own expiry plus the clock leeway.
- **receipts**: which file each credential was used for, with who it was issued to (caller,
  profile, request id), written by the upload API after it stored the file and kept for the
  receipt retention (a day by default), so a back end can ask whether and how a credential
  it handed out was used.
- **the epoch**: since when the ledger remembers, in Unix milliseconds. A ledger that lost its
  data (Redis restarted without persistence, a process restarted with its memory) cannot tell
  a used credential from a fresh one, so every credential issued before the epoch is refused:
  a restart can make clients fetch a new credential, never accept one twice. The loss is
  noticed by whichever touches the ledger first (an issue, a burn, a readiness check), and an
  issuer that learns of a new epoch stamps its credential as issued no earlier, so no
  credential handed out after the loss is refused.

In one process's memory by default (here); in Redis when configured, shared by every replica
(``app.core.ledger.redis``: one Lua script burns, reads the grant and checks the epoch atomically).
If Redis cannot answer, the ledger raises ``LedgerUnavailable`` and the caller answers 503: a
possibly replayed credential is never accepted, and a credential whose grant cannot be recorded
is never issued.
"""

import hashlib
import heapq
from dataclasses import dataclass
from typing import Final, Protocol

from app.core.clock import Clock, now_ms

# In Redis (``app.core.ledger.redis``) the keys are ``upload-auth:used:<hash>``, ``...grant:``,
# ``...receipt:`` and ``upload-auth:epoch`` (``{upload-auth}:...`` in a Cluster: one slot). The
# epoch has no expiry: with ``maxmemory-policy`` ``noeviction`` or ``volatile-*`` (which evict
# only keys that expire) it stays for as long as the data it vouches for.
#: No credential is remembered longer than this (a misconfigured signer could ask for years).
MAX_REMEMBER_SECONDS: Final = 7 * 24 * 3600
#: A ledger found to have forgotten starts its epoch this long after the discovery, so a
#: credential issued just before the loss is refused even if the issuing host's clock is ahead
#: of ours by up to this much (and those issued in the next second are refused too: the
#: clients fetch new ones).
FORGOTTEN_MARGIN_MS: Final = 1000


class LedgerUnavailable(Exception):
    """The ledger cannot answer now (the message names the cause, never a key)."""


def credential_key(kind: str, *parts: str) -> str:
    """The ledger's name for a credential: a hash, never the credential itself."""
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
    return f"{kind}:{digest}"


@dataclass(frozen=True, slots=True)
class Burn:
    """What the ledger said when a credential was used."""

    #: Not used before (as far as the ledger remembers: see ``epoch_ms``).
    fresh: bool
    #: The ledger remembers every use since this Unix time in milliseconds.
    epoch_ms: int
    #: The grant recorded for the credential when it was issued, if any.
    grant: bytes | None


class Ledger(Protocol):
    async def start(self, now_ms: int) -> None:
        """Begin the epoch now unless the ledger already has one (an empty Redis, a new
        process)."""
        ...

    async def record(self, key: str, grant: bytes, ttl: int, *, now_ms: int) -> int:
        """Remember what the credential ``key`` grants, for ``ttl`` seconds; returns the epoch
        (beginning a new one, with the margin, if the ledger forgot: a loss is noticed when a
        credential is issued, so the issuer can stamp it as issued no earlier)."""
        ...

    async def burn(self, key: str, ttl: int, *, now_ms: int) -> Burn:
        """Mark ``key`` used for ``ttl`` seconds; its grant and the epoch come back with it."""
        ...

    async def ping(self, now_ms: int | None = None) -> bool:
        """Whether the ledger can answer now (with ``now_ms``: and begin a new epoch if it
        forgot its data)."""
        ...

    async def note_use(self, key: str, receipt: bytes, ttl: int) -> None:
        """Remember, for ``ttl`` seconds, what the credential ``key`` was used for."""
        ...

    async def lookup(self, key: str) -> tuple[bytes | None, bytes | None]:
        """The credential's grant (as recorded at issue, while it lasts) and its receipt (once
        it was used, for the receipt retention)."""
        ...

    async def close(self) -> None: ...


def remember_for(seconds: int) -> int:
    """How long to keep an entry: as asked, within [1 s, MAX_REMEMBER_SECONDS]."""
    return max(1, min(seconds, MAX_REMEMBER_SECONDS))


class _Expiring:
    """A dict whose entries expire, purged lazily in expiry order."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[int, bytes]] = {}
        self.heap: list[tuple[int, str]] = []

    def purge(self, now: int) -> None:
        while self.heap and self.heap[0][0] <= now:
            when, key = heapq.heappop(self.heap)
            found = self.values.get(key)
            if found is not None and found[0] == when:
                del self.values[key]

    def get(self, key: str) -> bytes | None:
        found = self.values.get(key)
        return None if found is None else found[1]

    def put(self, key: str, value: bytes, until: int) -> None:
        self.values[key] = (until, value)
        heapq.heappush(self.heap, (until, key))

    def __len__(self) -> int:
        return len(self.values)


class MemoryLedger:
    """One process's memory: for a single replica and for development. Its epoch is the
    moment it was made, so a restarted process refuses what was issued before it started."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.epoch_ms = now_ms(clock)
        self.used = _Expiring()
        self.grants = _Expiring()
        self.receipts = _Expiring()

    async def start(self, now_ms: int) -> None:  # noqa: ARG002 - the epoch began at creation
        return None

    async def record(self, key: str, grant: bytes, ttl: int, *, now_ms: int) -> int:
        now = now_ms // 1000
        self.grants.purge(now)
        self.grants.put(key, grant, now + remember_for(ttl))
        return self.epoch_ms

    async def burn(self, key: str, ttl: int, *, now_ms: int) -> Burn:
        now = now_ms // 1000
        self.used.purge(now)
        self.grants.purge(now)
        fresh = self.used.get(key) is None
        if fresh:
            self.used.put(key, b"1", now + remember_for(ttl))
        return Burn(fresh, self.epoch_ms, self.grants.get(key))

    async def ping(self, now_ms: int | None = None) -> bool:  # noqa: ARG002 - never forgets
        return True

    async def note_use(self, key: str, receipt: bytes, ttl: int) -> None:
        now = int(self.clock())
        self.receipts.purge(now)
        self.receipts.put(key, receipt, now + remember_for(ttl))

    async def lookup(self, key: str) -> tuple[bytes | None, bytes | None]:
        now = int(self.clock())
        self.grants.purge(now)
        self.receipts.purge(now)
        return self.grants.get(key), self.receipts.get(key)

    async def close(self) -> None:
        return None

    def __len__(self) -> int:
        return len(self.used)
