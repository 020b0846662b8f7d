"""The outbox's bounds, on both backends (SQLite, and a real redis-server): pending events by
count and bytes, dead letters by count (oldest first) and age; an upload refused with 503
rather than stored without its event; an event's size bounded; the operator's command."""

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from app import cli
from app.core.settings import Settings
from app.core.webhooks.events import MAX_EVENT_BYTES, bounded
from app.core.webhooks.outbox import Outbox, OutboxLimits, RedisOutbox, SqliteOutbox
from tests.support.receiver import receiving
from tests.support.servers import Redis
from tests.support.uploads import V1, assert_imagekit_error, basic, file_part
from tests.support.webhooks import upload_api

pytestmark = pytest.mark.anyio

LIMITS = OutboxLimits(max_pending=3, max_pending_bytes=10_000, max_dead=2, dead_retention_ms=60_000)
BODY = json.dumps({"type": "file.created", "data": {"name": "a.png"}}).encode()


@pytest.fixture(params=["sqlite", "redis"])
async def outbox(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Outbox]:
    if request.param == "sqlite":
        yield SqliteOutbox(tmp_path / "outbox.sqlite3", LIMITS)
        return
    redis = Redis(tmp_path / "redis")
    redis.start()
    box = RedisOutbox(redis.url, LIMITS)
    try:
        yield box
    finally:
        await box.close()
        redis.stop()


async def test_pending_events_are_bounded_by_count_and_bytes(outbox: Outbox) -> None:
    """Room until three events wait, or until their bodies pass the byte bound; delivering
    one makes room again; the bytes follow the bodies."""
    for n in range(3):
        assert await outbox.has_room()
        await outbox.add(f"e{n}", BODY, now_ms=1000 + n)
    assert not await outbox.has_room()
    counts = await outbox.counts()
    assert (counts["pending"], counts["pending_bytes"]) == (3, 3 * len(BODY))
    await outbox.done("e0")
    assert await outbox.has_room()
    assert (await outbox.counts())["pending_bytes"] == 2 * len(BODY)
    await outbox.done("e1")
    await outbox.add("big", b'"' + b"x" * 10_000 + b'"', now_ms=2000)
    assert not await outbox.has_room()


async def test_dead_letters_are_capped_oldest_first_and_expire(outbox: Outbox) -> None:
    """At most two dead letters: a third pushes the oldest out; a letter older than the
    retention goes; replay puts one back in the queue from its first attempt; purge removes."""
    for n in range(3):
        await outbox.add(f"e{n}", BODY, now_ms=1000)
    assert await outbox.dead("e0", 12, "status 500", now_ms=10_000) == 0
    assert await outbox.dead("e1", 12, "timeout", now_ms=20_000) == 0
    assert await outbox.dead("e2", 12, "status 503", now_ms=30_000) == 1
    letters = await outbox.dead_letters()
    assert [(d.event_id, d.attempts, d.error, d.dead_ms) for d in letters] == [
        ("e1", 12, "timeout", 20_000),
        ("e2", 12, "status 503", 30_000),
    ]
    assert (await outbox.counts())["pending_bytes"] == 0
    assert await outbox.expire_dead(now_ms=20_000 + 60_001) == 1
    assert [d.event_id for d in await outbox.dead_letters()] == ["e2"]
    assert await outbox.replay(["e2", "unknown"], now_ms=100_000) == 1
    (again,) = await outbox.claim(now_ms=100_000, lease_ms=1000, limit=10)
    assert (again.event_id, again.attempts, again.body) == ("e2", 0, BODY)
    await outbox.dead("e2", 12, "status 500", now_ms=200_000)
    assert await outbox.purge(None) == 1
    assert await outbox.counts() == {"pending": 0, "pending_bytes": 0, "dead": 0}


def test_an_event_over_the_bound_leaves_out_its_largest_fields() -> None:
    """Embedded metadata goes first, then EXIF, then custom metadata; ids, path and the
    receipt stay; a small event is left whole."""
    event = {
        "type": "file.created",
        "id": "e1",
        "data": {
            "fileId": "f1",
            "filePath": "/a.png",
            "embeddedMetadata": {"XMP": "x" * MAX_EVENT_BYTES},
            "metadata": {"size": 1, "exif": {"image": {"Make": "y" * 1000}}},
            "customMetadata": {"a": "b"},
        },
        "receipt": {"caller": "session:alice"},
    }
    body, left_out = bounded(json.loads(json.dumps(event)))
    assert left_out == ["embeddedMetadata"]
    assert len(body) <= MAX_EVENT_BYTES
    kept = json.loads(body)
    assert kept["data"]["metadata"]["exif"]["image"]["Make"] == "y" * 1000
    assert kept["receipt"] == {"caller": "session:alice"}
    event["data"]["metadata"]["exif"] = {"image": {"Make": "y" * MAX_EVENT_BYTES}}  # type: ignore[index]
    body, left_out = bounded(event)
    assert left_out == ["embeddedMetadata", "metadata.exif"]
    assert json.loads(body)["data"]["customMetadata"] == {"a": "b"}
    assert bounded({"data": {"fileId": "f"}}) == (b'{"data":{"fileId":"f"}}', [])


async def test_a_full_outbox_refuses_uploads_rather_than_lose_their_events(
    hook_settings: Callable[..., Settings], private_key: str
) -> None:
    """The receiver is down and the queue is full: the next upload is ImageKit's 503 with
    Retry-After, nothing is stored for it, and the refusal is counted."""
    with receiving() as receiver:
        receiver.failures = 1000
        settings = hook_settings(receiver.url, webhook_max_pending=100, webhook_retry_base=3600)
        queue = SqliteOutbox(settings.storage_dir / "webhooks" / "outbox.sqlite3")
        for n in range(100):
            await queue.add(f"earlier-{n}", BODY, now_ms=0)
        async with upload_api(settings) as http:
            refused = await http.post(
                V1, headers=basic(private_key), data={"fileName": "a.png"}, files=file_part()
            )
            metrics = (await http.get("/metrics")).text
    assert_imagekit_error(
        refused, 503, "The upload API cannot queue upload events right now. Please retry."
    )
    assert refused.headers["retry-after"] == "30"
    assert not list((settings.storage_dir / "files").rglob("a*.png"))
    assert 'upload_auth_webhooks_refused_uploads_total{reason="full"} 1.0' in metrics
    assert (
        "upload_auth_webhooks_pending 100.0" in metrics or "upload_auth_webhooks_pending" in metrics
    )


def test_the_operator_lists_replays_and_purges_dead_letters(
    hook_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`upload-auth webhooks` reads the outbox the settings name: status, dead letters (no
    bodies unless asked), replay and purge; replay or purge without a choice is refused."""
    settings = hook_settings("http://127.0.0.1:9/hook")
    queue = SqliteOutbox(settings.storage_dir / "webhooks" / "outbox.sqlite3")

    async def three_dead_letters() -> None:
        for n in range(3):
            await queue.add(f"e{n}", BODY, now_ms=1000)
            await queue.dead(f"e{n}", 12, "status 500", now_ms=2000 + n)

    asyncio.run(three_dead_letters())
    monkeypatch.setenv("UPLOAD_AUTH_STORAGE_DIR", str(settings.storage_dir))
    monkeypatch.setenv("UPLOAD_AUTH_DEV_MODE", "true")

    def run(*argv: str) -> list[dict[str, object]]:
        assert cli.main(["webhooks", *argv]) == 0
        return [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    assert run("status")[0]["dead"] == 3
    listed = run("dead")
    assert [line["id"] for line in listed] == ["e0", "e1", "e2"]
    assert all("body" not in line for line in listed)
    assert run("dead", "--bodies")[0]["body"] == json.loads(BODY)
    assert cli.main(["webhooks", "replay"]) == 2
    assert "--all" in capsys.readouterr().err
    assert run("replay", "e1") == [{"replayed": 1}]
    assert run("purge", "--all") == [{"purged": 2}]
    status = run("status")[0]
    assert (status["pending"], status["dead"]) == (1, 0)


async def test_an_outbox_from_before_the_totals_starts_them_from_its_events(
    tmp_path: Path,
) -> None:
    """An SQLite outbox written before its pending totals were kept (events waiting, a dead
    letter) opens with the right totals, and keeps them as events come and go."""
    path = tmp_path / "outbox.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE events (id TEXT PRIMARY KEY, body BLOB NOT NULL, attempts INTEGER "
            "NOT NULL DEFAULT 0, due_ms INTEGER NOT NULL, dead INTEGER NOT NULL DEFAULT 0, "
            "last_error TEXT, created_ms INTEGER NOT NULL)"
        )
        db.executemany(
            "INSERT INTO events (id, body, due_ms, dead, created_ms) VALUES (?, ?, 0, ?, 0)",
            [("a", BODY, 0), ("b", BODY, 0), ("c", BODY, 1)],
        )
    db.close()
    outbox = SqliteOutbox(path, LIMITS)
    assert await outbox.counts() == {"pending": 2, "pending_bytes": 2 * len(BODY), "dead": 1}
    await outbox.add("d", BODY, now_ms=1)
    assert not await outbox.has_room()
    await outbox.done("a")
    assert await outbox.counts() == {"pending": 2, "pending_bytes": 2 * len(BODY), "dead": 1}
    assert await SqliteOutbox(path, LIMITS).has_room()  # opened again: totals kept, not redone
