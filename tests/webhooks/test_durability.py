"""Events as durable as files: an event the shared outbox does not take goes to the replica's
spool and is delivered from there; a shared outbox that lost its data is noticed, logged and
counted, never silent (#28)."""

import asyncio
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from app.core.webhooks.outbox import RedisOutbox, SqliteOutbox
from app.core.webhooks.sender import WebhookMetrics, WebhookSender
from tests.support.receiver import receiving
from tests.support.servers import Redis

pytestmark = pytest.mark.anyio

BODY = b'{"type":"file.created","id":"e1","data":{"name":"a.png"}}'


class Unreachable(SqliteOutbox):
    """An outbox that takes nothing (Redis gone between an upload's check and its end)."""

    async def add(self, event_id: str, body: bytes, now_ms: int) -> None:  # noqa: ARG002
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
