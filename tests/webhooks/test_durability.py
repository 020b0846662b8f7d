"""Events as durable as files: an event the shared outbox does not take goes to the replica's
spool and is delivered from there; a shared outbox that lost its data is noticed, logged,
counted, and refilled from the stored files (#28)."""

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from app.core.settings import Settings
from app.core.webhooks.outbox import RedisOutbox, SqliteOutbox
from app.core.webhooks.sender import WebhookMetrics, WebhookSender
from tests.support import media_files as mf
from tests.support.receiver import Receiver, receiving
from tests.support.servers import Redis
from tests.support.uploads import owner_stored
from tests.support.webhooks import upload_api

pytestmark = pytest.mark.anyio

BODY = b'{"type":"file.created","id":"e1","data":{"name":"a.png"}}'


class Unreachable(SqliteOutbox):
    """An outbox that takes nothing (Redis gone between an upload's check and its end)."""

    async def add(self, event_id: str, body: bytes, now_ms: int) -> bool:  # noqa: ARG002
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


async def test_an_event_the_outbox_refuses_is_spooled_and_delivered(tmp_path: Path) -> None:
    """The shared outbox refuses the add: the event goes to the spool, counted, and the sender
    delivers it from there, once, with its id."""
    registry = CollectorRegistry()
    metrics = WebhookMetrics(registry)
    with receiving() as receiver:
        sender = WebhookSender(
            Unreachable(tmp_path / "shared.sqlite3"),
            receiver.url,
            b"secret",
            clock=time.time,
            metrics=metrics,
            poll_seconds=0.05,
            spool=SqliteOutbox(tmp_path / "spool.sqlite3"),
        )
        sender.start()
        try:
            await sender.enqueue("e1", BODY)
            delivered = await asyncio.to_thread(receiver.wait_for, 1, 10)
        finally:
            await sender.stop()
    assert [d.headers["webhook-id"] for d in delivered] == ["e1"]
    assert registry.get_sample_value("upload_auth_webhooks_spooled_total") == 1
    assert registry.get_sample_value("upload_auth_webhooks_enqueue_failures_total") == 0
    assert (await SqliteOutbox(tmp_path / "spool.sqlite3").counts())["pending"] == 0


async def test_a_redis_that_lost_the_outbox_is_noticed(tmp_path: Path) -> None:
    """The first check marks the outbox; after a FLUSHALL the next check says it was lost
    (once), and the sender logs and counts it."""
    redis = Redis(tmp_path / "redis")
    redis.start()
    try:
        outbox = RedisOutbox(redis.url)
        assert await outbox.check_marker(1000)
        assert await outbox.check_marker(2000)
        client = aioredis.Redis.from_url(redis.url)
        await client.flushall()
        await client.aclose()
        assert not await outbox.check_marker(3000)
        assert await outbox.check_marker(4000)
        registry = CollectorRegistry()
        sender = WebhookSender(
            RedisOutbox(redis.url),
            "http://127.0.0.1:9/hook",
            b"secret",
            clock=time.time,
            metrics=WebhookMetrics(registry),
            poll_seconds=0.05,
        )
        sender.start()
        await asyncio.sleep(0.3)
        client = aioredis.Redis.from_url(redis.url)
        await client.flushall()
        await client.aclose()
        await asyncio.sleep(0.3)
        await sender.stop()
        await outbox.close()
    finally:
        redis.stop()
    assert registry.get_sample_value("upload_auth_webhooks_outbox_lost_total") == 1


async def test_events_a_wiped_redis_lost_are_made_again_from_the_stored_files(
    hook_settings: Callable[..., Settings], private_key: str, tmp_path: Path
) -> None:
    """A failing receiver holds five uploads' events in the Redis outbox; Redis is flushed. The
    sender notices, refills the outbox from the stored files, and every upload's event is
    delivered under its first id with its first body, byte for byte; an upload after the loss
    gets its event too."""
    redis = Redis(tmp_path / "redis")
    redis.start()
    try:
        with receiving() as receiver:
            receiver.failures = 10**6
            settings = hook_settings(receiver.url, redis_url=redis.url)
            async with upload_api(settings) as http:
                for index in range(5):
                    await owner_stored(http, private_key, f"f{index}.png", mf.image("png", 8, 8))
                first = await asyncio.to_thread(attempted, receiver, 5)
                client = aioredis.Redis.from_url(redis.url)
                await client.flushall()
                await client.aclose()
                receiver.failures = 0
                later = await owner_stored(http, private_key, "later.png", mf.image("png", 9, 9))
                done = await asyncio.to_thread(receiver.wait_for, 6, 30)
                metrics = (await http.get("/metrics")).text
    finally:
        redis.stop()
    delivered = {d.headers["webhook-id"]: d.body for d in done}
    assert set(first) <= set(delivered)
    for event_id, body in first.items():
        assert delivered[event_id] == body  # the same event, made again
    assert len(delivered) == 6
    assert later["fileId"] in b"".join(delivered.values()).decode()
    assert "upload_auth_webhooks_outbox_lost_total 1.0" in metrics
    assert "upload_auth_webhooks_refilled_total 5.0" in metrics


def attempted(receiver: Receiver, count: int, timeout: float = 20) -> dict[str, bytes]:
    """The first ``count`` distinct events tried (answered or not): id -> body."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = {d.headers["webhook-id"]: d.body for d in list(receiver.deliveries)}
        if len(seen) >= count:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"{len(receiver.deliveries)} attempts, wanted {count} events")
