"""Where webhook events wait until they are delivered: durable, shared, leased.

An event is added once, when its upload is stored, under its id (so a retry is the same event).
A sender ``claim``s the events that are due: each is leased to it for ``lease_ms`` (its due time
moves past the lease), so another sender (another replica) takes it only if the first did not
finish in time, as when its process died: delivery is at least once, never lost. After a
delivery the sender marks it ``done`` (gone), ``retry`` (due again later) or ``dead`` (kept
as a dead letter, with the last error).

Bounded (``OutboxLimits``): pending events by count and by bytes (``has_room`` says whether
another fits: the upload API refuses an upload with 503 rather than store it without its event),
dead letters by count (the oldest go first) and by age (``expire_dead``). An operator lists,
replays and purges dead letters (``upload-auth webhooks``).

- ``RedisOutbox``: a sorted set of ids by due time and a hash of events, claimed by a Lua
  script, so every replica sharing the Redis shares the queue; a counter of pending bytes, and
  dead letters in a hash with a sorted set by the time they died.
- ``SqliteOutbox``: an SQLite database (WAL) on the storage volume, for a single host; it
  survives restarts, and processes on the host share it through SQLite's locking.
"""

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol


@dataclass(frozen=True, slots=True)
class OutboxLimits:
    """How much the outbox holds: pending events (count and bytes of their bodies), dead
    letters (count, and how long each is kept)."""

    max_pending: int = 100_000
    max_pending_bytes: int = 256 * 1024 * 1024
    max_dead: int = 10_000
    dead_retention_ms: int = 7 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    event_id: str
    attempts: int
    error: str | None
    body: bytes
    #: When it was given up, Unix milliseconds.
    dead_ms: int


@dataclass(frozen=True, slots=True)
class Pending:
    event_id: str
    body: bytes
    #: Delivery attempts made before this one.
    attempts: int


class Outbox(Protocol):
    limits: OutboxLimits

    async def has_room(self) -> bool:
        """Whether another event fits under the pending limits."""
        ...

    async def check_marker(self, now_ms: int) -> bool:
        """Whether the outbox still holds what it held (a shared store may lose its data);
        False once when it was found to have lost it (the marker is set again)."""
        ...

    async def add(self, event_id: str, body: bytes, now_ms: int) -> bool:
        """Add an event (always: whether it fits was asked before its upload was stored);
        False if one with its id is there already."""
        ...

    async def claim(self, now_ms: int, lease_ms: int, limit: int) -> list[Pending]: ...

    async def done(self, event_id: str) -> None: ...

    async def retry(self, event_id: str, attempts: int, due_ms: int, error: str) -> None: ...

    async def dead(self, event_id: str, attempts: int, error: str, now_ms: int) -> int:
        """Keep the event as a dead letter; returns how many of the oldest dead letters went
        to keep their number within ``max_dead``."""
        ...

    async def expire_dead(self, now_ms: int) -> int:
        """Remove dead letters older than ``dead_retention_ms``; how many went."""
        ...

    async def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, oldest first."""
        ...

    async def replay(self, event_ids: list[str] | None, now_ms: int) -> int:
        """Dead letters (these, or all) back to pending, due now, attempts from zero."""
        ...

    async def purge(self, event_ids: list[str] | None) -> int:
        """Dead letters (these, or all) removed."""
        ...

    async def counts(self) -> dict[str, int]:
        """``pending`` events, ``pending_bytes``, ``dead`` letters."""
        ...

    async def oldest_pending_ms(self) -> int | None:
        """When the oldest pending event was added (None: none pending, or an outbox that
        cannot lose its data and need not say)."""
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

#: The pending events' number and bytes, kept by triggers as events come, go and die (as the
#: Redis outbox keeps its byte counter): an upload's ``has_room`` reads one row instead of
#: summing every pending body (100 ms with 100,000 waiting). Begun from the events already
#: there when an older outbox first opens with it; one transaction, so no add slips between.
_TOTALS: Final = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS pending (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    events INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
INSERT OR IGNORE INTO pending (id, events, bytes)
    SELECT 1, COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM events WHERE dead = 0;
CREATE TRIGGER IF NOT EXISTS pending_added AFTER INSERT ON events WHEN NEW.dead = 0 BEGIN
    UPDATE pending SET events = events + 1, bytes = bytes + LENGTH(NEW.body);
END;
CREATE TRIGGER IF NOT EXISTS pending_removed AFTER DELETE ON events WHEN OLD.dead = 0 BEGIN
    UPDATE pending SET events = events - 1, bytes = bytes - LENGTH(OLD.body);
END;
CREATE TRIGGER IF NOT EXISTS pending_moved AFTER UPDATE OF dead ON events
    WHEN OLD.dead <> NEW.dead BEGIN
    UPDATE pending SET
        events = events + CASE NEW.dead WHEN 0 THEN 1 ELSE -1 END,
        bytes = bytes + CASE NEW.dead WHEN 0 THEN LENGTH(NEW.body) ELSE -LENGTH(OLD.body) END;
END;
COMMIT;
"""


class SqliteOutbox:
    """SQLite in WAL mode; every call runs in a thread, off the event loop."""

    def __init__(self, path: Path, limits: OutboxLimits | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.limits = limits or OutboxLimits()
        self._lock = asyncio.Lock()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")  # kept in the database file itself
            db.executescript(_SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(events)")}
            if "dead_ms" not in columns:  # an outbox from before dead letters were bounded
                db.execute("ALTER TABLE events ADD COLUMN dead_ms INTEGER")
            db.executescript(_TOTALS)

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

    async def _transaction(self, steps: Callable[[sqlite3.Connection], int]) -> int:
        def run() -> int:
            with self._connect() as db:
                db.execute("BEGIN IMMEDIATE")
                try:
                    result = steps(db)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                return result

        async with self._lock:
            return await asyncio.to_thread(run)

    async def check_marker(self, now_ms: int) -> bool:  # noqa: ARG002 - a file does not forget
        return True

    async def has_room(self) -> bool:
        ((events, size),) = await self._run("SELECT events, bytes FROM pending")
        limits = self.limits
        return int(str(events)) < limits.max_pending and int(str(size)) < limits.max_pending_bytes

    async def add(self, event_id: str, body: bytes, now_ms: int) -> bool:
        found = await self._run(
            "INSERT OR IGNORE INTO events (id, body, due_ms, created_ms) VALUES (?, ?, ?, ?) "
            "RETURNING id",
            event_id,
            body,
            now_ms,
            now_ms,
        )
        return bool(found)

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
            "UPDATE events SET attempts = ?, due_ms = ?, last_error = ? WHERE id = ? AND dead = 0",
            attempts,
            due_ms,
            error,
            event_id,
        )

    async def dead(self, event_id: str, attempts: int, error: str, now_ms: int) -> int:
        def steps(db: sqlite3.Connection) -> int:
            db.execute(
                "UPDATE events SET attempts = ?, dead = 1, last_error = ?, dead_ms = ? "
                "WHERE id = ?",
                (attempts, error, now_ms, event_id),
            )
            over = db.execute("SELECT COUNT(*) FROM events WHERE dead = 1").fetchone()[0]
            over -= self.limits.max_dead
            if over <= 0:
                return 0
            db.execute(
                "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE dead = 1 "
                "ORDER BY dead_ms, id LIMIT ?)",
                (over,),
            )
            return int(over)

        return await self._transaction(steps)

    async def expire_dead(self, now_ms: int) -> int:
        def steps(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "DELETE FROM events WHERE dead = 1 AND COALESCE(dead_ms, 0) < ?",
                (now_ms - self.limits.dead_retention_ms,),
            )
            return int(cursor.rowcount)

        return await self._transaction(steps)

    async def dead_letters(self) -> list[DeadLetter]:
        rows = await self._run(
            "SELECT id, attempts, last_error, body, COALESCE(dead_ms, 0) FROM events "
            "WHERE dead = 1 ORDER BY dead_ms, id"
        )
        return [
            DeadLetter(str(i), int(str(a)), None if e is None else str(e), bytes(b), int(str(d)))  # type: ignore[call-overload]
            for i, a, e, b, d in rows
        ]

    def _chosen(self, event_ids: list[str] | None) -> tuple[str, tuple[object, ...]]:
        if event_ids is None:
            return "", ()
        return f" AND id IN ({','.join('?' * len(event_ids))})", tuple(event_ids)

    async def replay(self, event_ids: list[str] | None, now_ms: int) -> int:
        where, args = self._chosen(event_ids)

        def steps(db: sqlite3.Connection) -> int:
            sql = "UPDATE events SET dead = 0, attempts = 0, due_ms = ?, dead_ms = NULL"
            sql += " WHERE dead = 1"
            cursor = db.execute(sql + where, (now_ms, *args))  # where: placeholders only
            return int(cursor.rowcount)

        return await self._transaction(steps)

    async def purge(self, event_ids: list[str] | None) -> int:
        where, args = self._chosen(event_ids)

        def steps(db: sqlite3.Connection) -> int:
            sql = "DELETE FROM events WHERE dead = 1"
            return int(db.execute(sql + where, args).rowcount)  # where: placeholders only

        return await self._transaction(steps)

    async def counts(self) -> dict[str, int]:
        ((events, size, dead),) = await self._run(
            "SELECT events, bytes, (SELECT COUNT(*) FROM events WHERE dead = 1) FROM pending"
        )
        return {
            "pending": int(str(events)),
            "pending_bytes": int(str(size)),
            "dead": int(str(dead)),
        }

    async def oldest_pending_ms(self) -> int | None:
        return None  # a file does not forget: nothing to refill it from

    async def close(self) -> None:
        return None


class _Keys:
    """The outbox's keys under a prefix (``upload-auth:``, or ``{upload-auth}:`` in a Cluster:
    one slot for every script)."""

    def __init__(self, prefix: str) -> None:
        base = prefix + "webhooks:"
        self.due = base + "due"
        self.events = base + "events"
        self.dead = base + "dead"
        self.dead_at = base + "dead-at"
        self.pending_bytes = base + "pending-bytes"
        #: The pending events' ids by when they were added: where a refill after a loss starts.
        self.added = base + "added"
        #: Set once by the first sender; gone means Redis lost the outbox (restarted, flushed).
        self.marker = base + "marker"
        #: The primary's replication history the marker was last seen in (Sentinel, Cluster).
        self.marker_history = base + "marker-history"


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

#: Add an event once: KEYS events, due, bytes, added; ARGV id, record, now, body length.
_ADD: Final = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[1])
  redis.call('INCRBY', KEYS[3], ARGV[4])
  redis.call('ZADD', KEYS[4], 'NX', ARGV[3], ARGV[1])
  return 1
end
return 0
"""

#: Forget a pending event: KEYS events, due, bytes, added; ARGV id. Its body's bytes are given
#: back.
_DONE: Final = """
local record = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
if record then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('DECRBY', KEYS[3], string.len(cjson.decode(record)['body']))
end
return 1
"""

#: A pending event becomes a dead letter, the oldest dead letters over the cap go: KEYS events,
#: due, bytes, dead, dead-at, added; ARGV id, record, now, max dead. Returns how many went.
_DEAD: Final = """
local record = redis.call('HGET', KEYS[1], ARGV[1])
if not record then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[6], ARGV[1])
redis.call('DECRBY', KEYS[3], string.len(cjson.decode(record)['body']))
redis.call('HSET', KEYS[4], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[1])
local over = redis.call('ZCARD', KEYS[5]) - tonumber(ARGV[4])
if over <= 0 then return 0 end
local oldest = redis.call('ZRANGE', KEYS[5], 0, over - 1)
for _, id in ipairs(oldest) do redis.call('HDEL', KEYS[4], id) end
redis.call('ZREMRANGEBYRANK', KEYS[5], 0, over - 1)
return over
"""

#: Dead letters older than a moment go: KEYS dead, dead-at; ARGV the moment. Returns how many.
_EXPIRE: Final = """
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
for _, id in ipairs(old) do redis.call('HDEL', KEYS[1], id) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
return #old
"""

#: A dead letter back to pending, due now, attempts from zero: KEYS dead, dead-at, events, due,
#: bytes, added; ARGV id, now. Returns 1 if there was one.
_REPLAY: Final = """
local record = redis.call('HGET', KEYS[1], ARGV[1])
if not record then return 0 end
local decoded = cjson.decode(record)
decoded['attempts'] = 0
decoded['error'] = cjson.null
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], cjson.encode(decoded))
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
redis.call('INCRBY', KEYS[5], string.len(decoded['body']))
redis.call('ZADD', KEYS[6], ARGV[2], ARGV[1])
return 1
"""


#: Whether the outbox holds what it held: KEYS marker, marker history; ARGV now, 1 where a
#: failover may promote a replica. Returns 1 if the marker was there (and, bound, in the same
#: replication history), else 0 (set anew). A promoted replica may lack the last events its old
#: primary took (replication is asynchronous) and starts a new history: a loss, refilled.
_MARKER: Final = """
local kept = 1
if not redis.call('GET', KEYS[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
  kept = 0
end
if ARGV[2] == '1' then
  local history = string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)')
  local known = redis.call('GET', KEYS[2])
  if known ~= history then
    if known then kept = 0 end
    redis.call('SET', KEYS[2], history)
  end
end
return kept
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisOutbox:
    """Redis, shared by every replica; the events are kept without expiry (Redis must run with
    persistence and ``noeviction``, as for the credential ledger), within the limits. Its
    client survives a Redis restart (``app.core.redis_client``): no event is lost to a stale
    connection, and none is delivered twice because marking it done failed."""

    def __init__(self, url: str, limits: OutboxLimits | None = None) -> None:
        # The Redis client only where Redis is used.
        from app.core.redis_client import connect
        from app.core.redis_url import key_prefix, target_of

        self.limits = limits or OutboxLimits()
        self.redis = connect(url, timeout=5)
        self.keys = _Keys(key_prefix(url))
        self.bound = target_of(url).kind != "server"
        self._marked = False
        self.claim_script = self.redis.register_script(_CLAIM)
        self.add_script = self.redis.register_script(_ADD)
        self.done_script = self.redis.register_script(_DONE)
        self.dead_script = self.redis.register_script(_DEAD)
        self.expire_script = self.redis.register_script(_EXPIRE)
        self.replay_script = self.redis.register_script(_REPLAY)
        self.marker_script = self.redis.register_script(_MARKER)

    @staticmethod
    def _record(body: bytes, attempts: int, error: str | None = None) -> str:
        return json.dumps({"body": body.decode(), "attempts": attempts, "error": error})

    async def check_marker(self, now_ms: int) -> bool:
        kept = await self.marker_script(
            keys=[self.keys.marker, self.keys.marker_history], args=[now_ms, int(self.bound)]
        )
        found = bool(kept) or not self._marked  # seen before, and had to be set again: lost
        self._marked = True
        return found

    async def has_room(self) -> bool:
        async with self.redis.pipeline(transaction=False) as pipe:  # one round trip
            pipe.hlen(self.keys.events)
            pipe.get(self.keys.pending_bytes)
            pending, size = await pipe.execute()
        limits = self.limits
        return int(pending) < limits.max_pending and int(size or 0) < limits.max_pending_bytes

    async def add(self, event_id: str, body: bytes, now_ms: int) -> bool:
        added = await self.add_script(
            keys=[self.keys.events, self.keys.due, self.keys.pending_bytes, self.keys.added],
            args=[event_id, self._record(body, 0), now_ms, len(body.decode())],
        )
        return bool(added)

    async def claim(self, now_ms: int, lease_ms: int, limit: int) -> list[Pending]:
        found = await self.claim_script(
            keys=[self.keys.due, self.keys.events], args=[now_ms, lease_ms, limit]
        )
        pending = []
        for index in range(0, len(found), 2):
            record = json.loads(found[index + 1])
            pending.append(
                Pending(_text(found[index]), record["body"].encode(), record["attempts"])
            )
        return pending

    async def done(self, event_id: str) -> None:
        await self.done_script(
            keys=[self.keys.events, self.keys.due, self.keys.pending_bytes, self.keys.added],
            args=[event_id],
        )

    async def retry(self, event_id: str, attempts: int, due_ms: int, error: str) -> None:
        raw = await self.redis.hget(self.keys.events, event_id)
        if raw is None:
            return
        body = json.loads(raw)["body"].encode()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.events, event_id, self._record(body, attempts, error))
            pipe.zadd(self.keys.due, {event_id: due_ms})
            await pipe.execute()

    async def dead(self, event_id: str, attempts: int, error: str, now_ms: int) -> int:
        raw = await self.redis.hget(self.keys.events, event_id)
        if raw is None:
            return 0
        record = self._record(json.loads(raw)["body"].encode(), attempts, error)
        keys = [
            self.keys.events,
            self.keys.due,
            self.keys.pending_bytes,
            self.keys.dead,
            self.keys.dead_at,
            self.keys.added,
        ]
        evicted = await self.dead_script(
            keys=keys, args=[event_id, record, now_ms, self.limits.max_dead]
        )
        return int(evicted)

    async def expire_dead(self, now_ms: int) -> int:
        cutoff = now_ms - self.limits.dead_retention_ms
        return int(
            await self.expire_script(keys=[self.keys.dead, self.keys.dead_at], args=[cutoff])
        )

    async def dead_letters(self) -> list[DeadLetter]:
        letters = await self.redis.hgetall(self.keys.dead)
        scored = await self.redis.zrange(self.keys.dead_at, 0, -1, withscores=True)
        when = {_text(pair[0]): int(pair[1]) for pair in scored if isinstance(pair, tuple)}
        found = []
        for key, raw in letters.items():
            record = json.loads(raw)
            found.append(
                DeadLetter(
                    _text(key),
                    record["attempts"],
                    record["error"],
                    record["body"].encode(),
                    when.get(_text(key), 0),
                )
            )
        return sorted(found, key=lambda letter: (letter.dead_ms, letter.event_id))

    async def _ids(self, event_ids: list[str] | None) -> list[str]:
        if event_ids is not None:
            return event_ids
        return [_text(key) for key in await self.redis.hkeys(self.keys.dead)]

    async def replay(self, event_ids: list[str] | None, now_ms: int) -> int:
        keys = [
            self.keys.dead,
            self.keys.dead_at,
            self.keys.events,
            self.keys.due,
            self.keys.pending_bytes,
            self.keys.added,
        ]
        moved = 0
        for event_id in await self._ids(event_ids):
            moved += int(await self.replay_script(keys=keys, args=[event_id, now_ms]))
        return moved

    async def purge(self, event_ids: list[str] | None) -> int:
        ids = await self._ids(event_ids)
        if not ids:
            return 0
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self.keys.dead, *ids)
            pipe.zrem(self.keys.dead_at, *ids)
            removed, _ = await pipe.execute()
        return int(removed)

    async def counts(self) -> dict[str, int]:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hlen(self.keys.events)
            pipe.get(self.keys.pending_bytes)
            pipe.hlen(self.keys.dead)
            pending, size, dead = await pipe.execute()
        return {"pending": int(pending), "pending_bytes": int(size or 0), "dead": int(dead)}

    async def oldest_pending_ms(self) -> int | None:
        oldest = await self.redis.zrange(self.keys.added, 0, 0, withscores=True)
        return int(oldest[0][1]) if oldest else None

    async def close(self) -> None:
        from app.core.redis_client import close

        await close(self.redis)
