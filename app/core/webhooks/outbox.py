"""Where webhook events wait until they are delivered: durable, shared, leased.

An event is added once, when its upload is stored, under its id (so a retry is the same event).
A sender ``claim``s the events that are due: each is leased to it for ``lease_ms`` (its due time
moves past the lease), so another sender (another replica) takes it only if the first did not
finish in time, as when its process died: delivery is at least once, never lost. After a
delivery the sender marks it ``done`` (gone), ``retry`` (due again later) or ``dead`` (kept
as a dead letter, with the last error).

- ``RedisOutbox``: a sorted set of ids by due time and a hash of events, claimed by a Lua
  script, so every replica sharing the Redis shares the queue.
- ``SqliteOutbox``: an SQLite database (WAL) on the storage volume, for a single host; it
  survives restarts, and processes on the host share it through SQLite's locking.
"""

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol


@dataclass(frozen=True, slots=True)
class Pending:
    event_id: str
    body: bytes
    #: Delivery attempts made before this one.
    attempts: int


class Outbox(Protocol):
    async def add(self, event_id: str, body: bytes, now_ms: int) -> None: ...

    async def claim(self, now_ms: int, lease_ms: int, limit: int) -> list[Pending]: ...

    async def done(self, event_id: str) -> None: ...

    async def retry(self, event_id: str, attempts: int, due_ms: int, error: str) -> None: ...

    async def dead(self, event_id: str, attempts: int, error: str) -> None: ...

    async def counts(self) -> dict[str, int]:
        """``pending`` and ``dead`` events."""
        ...

    async def close(self) -> None: ...


_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    body BLOB NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due_ms INTEGER NOT NULL,
    dead INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_due ON events (dead, due_ms);
"""


class SqliteOutbox:
    """SQLite in WAL mode; every call runs in a thread, off the event loop."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = asyncio.Lock()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")  # kept in the database file itself
            db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=NORMAL")  # per connection
            yield db
        finally:
            db.close()

    async def _run(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        def run() -> list[tuple[object, ...]]:
            with self._connect() as db:
                return db.execute(sql, args).fetchall()

        async with self._lock:
            return await asyncio.to_thread(run)

    async def add(self, event_id: str, body: bytes, now_ms: int) -> None:
        await self._run(
            "INSERT OR IGNORE INTO events (id, body, due_ms, created_ms) VALUES (?, ?, ?, ?)",
            event_id,
            body,
            now_ms,
            now_ms,
        )

    async def claim(self, now_ms: int, lease_ms: int, limit: int) -> list[Pending]:
        def run() -> list[Pending]:
            with self._connect() as db:
                db.execute("BEGIN IMMEDIATE")
                try:
                    rows = db.execute(
                        "SELECT id, body, attempts FROM events WHERE dead = 0 AND due_ms <= ? "
                        "ORDER BY due_ms LIMIT ?",
                        (now_ms, limit),
                    ).fetchall()
                    db.executemany(
                        "UPDATE events SET due_ms = ? WHERE id = ?",
                        [(now_ms + lease_ms, row[0]) for row in rows],
                    )
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            return [Pending(row[0], bytes(row[1]), row[2]) for row in rows]

        async with self._lock:
            return await asyncio.to_thread(run)

    async def done(self, event_id: str) -> None:
        await self._run("DELETE FROM events WHERE id = ?", event_id)

    async def retry(self, event_id: str, attempts: int, due_ms: int, error: str) -> None:
        await self._run(
            "UPDATE events SET attempts = ?, due_ms = ?, last_error = ? WHERE id = ?",
            attempts,
            due_ms,
            error,
            event_id,
        )

    async def dead(self, event_id: str, attempts: int, error: str) -> None:
        await self._run(
            "UPDATE events SET attempts = ?, dead = 1, last_error = ? WHERE id = ?",
            attempts,
            error,
            event_id,
        )

    async def counts(self) -> dict[str, int]:
        rows = await self._run("SELECT dead, COUNT(*) FROM events GROUP BY dead")
        found = {bool(dead): int(str(count)) for dead, count in rows}
        return {"pending": found.get(False, 0), "dead": found.get(True, 0)}

    async def dead_letters(self) -> list[dict[str, object]]:
        """The dead letters: id, attempts, last error, body."""
        rows = await self._run("SELECT id, attempts, last_error, body FROM events WHERE dead = 1")
        return [
            {"id": i, "attempts": a, "error": e, "body": bytes(b)}  # type: ignore[call-overload]
            for i, a, e, b in rows
        ]

    async def close(self) -> None:
        return None


_PREFIX: Final = "upload-auth:webhooks:"
DUE_KEY: Final = _PREFIX + "due"
EVENTS_KEY: Final = _PREFIX + "events"
DEAD_KEY: Final = _PREFIX + "dead"

#: Claim the due events: KEYS due, events; ARGV now, lease, limit. Returns [id, record, ...].
_CLAIM: Final = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local found = {}
for _, id in ipairs(ids) do
  local record = redis.call('HGET', KEYS[2], id)
  if record then
    redis.call('ZADD', KEYS[1], ARGV[1] + ARGV[2], id)
    table.insert(found, id)
    table.insert(found, record)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return found
"""


class RedisOutbox:
    """Redis, shared by every replica; the events are kept without expiry (Redis must run with
    persistence and ``noeviction``, as for the credential ledger)."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as aioredis

        self.redis = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.claim_script = self.redis.register_script(_CLAIM)

    @staticmethod
    def _record(body: bytes, attempts: int, error: str | None = None) -> str:
        return json.dumps({"body": body.decode(), "attempts": attempts, "error": error})

    async def add(self, event_id: str, body: bytes, now_ms: int) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(EVENTS_KEY, event_id, self._record(body, 0))
            pipe.zadd(DUE_KEY, {event_id: now_ms}, nx=True)
            await pipe.execute()

    async def claim(self, now_ms: int, lease_ms: int, limit: int) -> list[Pending]:
        found = await self.claim_script(keys=[DUE_KEY, EVENTS_KEY], args=[now_ms, lease_ms, limit])
        pending = []
        for index in range(0, len(found), 2):
            record = json.loads(found[index + 1])
            event_id = found[index].decode() if isinstance(found[index], bytes) else found[index]
            pending.append(Pending(event_id, record["body"].encode(), record["attempts"]))
        return pending

    async def done(self, event_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(DUE_KEY, event_id)
            pipe.hdel(EVENTS_KEY, event_id)
            await pipe.execute()

    async def retry(self, event_id: str, attempts: int, due_ms: int, error: str) -> None:
        raw = await self.redis.hget(EVENTS_KEY, event_id)
        if raw is None:
            return
        body = json.loads(raw)["body"].encode()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(EVENTS_KEY, event_id, self._record(body, attempts, error))
            pipe.zadd(DUE_KEY, {event_id: due_ms})
            await pipe.execute()

    async def dead(self, event_id: str, attempts: int, error: str) -> None:
        raw = await self.redis.hget(EVENTS_KEY, event_id)
        if raw is None:
            return
        body = json.loads(raw)["body"].encode()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(DEAD_KEY, event_id, self._record(body, attempts, error))
            pipe.zrem(DUE_KEY, event_id)
            pipe.hdel(EVENTS_KEY, event_id)
            await pipe.execute()

    async def counts(self) -> dict[str, int]:
        pending, dead = await self.redis.hlen(EVENTS_KEY), await self.redis.hlen(DEAD_KEY)
        return {"pending": int(pending), "dead": int(dead)}

    async def dead_letters(self) -> list[dict[str, object]]:
        letters = await self.redis.hgetall(DEAD_KEY)
        found: list[dict[str, object]] = []
        for key, raw in letters.items():
            record = json.loads(raw)
            event_id = key.decode() if isinstance(key, bytes) else key
            found.append(
                {
                    "id": event_id,
                    "attempts": record["attempts"],
                    "error": record["error"],
                    "body": record["body"].encode(),
                }
            )
        return found

    async def close(self) -> None:
        await self.redis.aclose()
