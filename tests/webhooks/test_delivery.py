"""Upload events from the upload API to a real receiver on loopback: ImageKit's event format,
verified by both official SDKs' own verifiers; delivered later to a receiver that fails, times
out or is down; kept across a restart of the upload API (SQLite outbox); a dead letter after
the last attempt; and the upload's answer never waits for the receiver."""

import asyncio
import base64
import time
from collections.abc import Callable

import pytest
from imagekitio.types import FileCreateEvent, FileVersionCreateEvent
from standardwebhooks import Webhook, WebhookVerificationError

from app.core.settings import Settings
from app.core.webhooks.outbox import SqliteOutbox
from tests.support import media_files as mf
from tests.support.receiver import Delivery, Receiver, receiving
from tests.support.servers import free_port
from tests.support.uploads import owner_stored
from tests.support.webhooks import node_verify, python_unwrap, upload_api

pytestmark = pytest.mark.anyio

PICTURE = mf.image("png", 20, 10)


async def settle(receiver: Receiver, count: int) -> list[Delivery]:
    return await asyncio.to_thread(receiver.wait_for, count)


async def test_events_are_imagekits_and_both_sdks_verify_them(
    hook_settings: Callable[..., Settings], private_key: str, webhook_secret: str
) -> None:
    with receiving() as receiver:
        async with upload_api(hook_settings(receiver.url)) as http:
            first = await owner_stored(http, private_key, "a.png", PICTURE, tags="x,y")
            second = await owner_stored(http, private_key, "a.png", mf.image("png", 30, 10))
            created, versioned = await settle(receiver, 2)
    event = python_unwrap(created, webhook_secret)
    assert isinstance(event, FileCreateEvent)
    assert event.data.file_id == first["fileId"]
    assert event.data.file_path == "/a.png"
    assert (event.data.width, event.data.height) == (20, 10)
    assert event.data.tags == ["x", "y"]
    assert event.data.mime == "image/png"
    assert event.data.type == "file"
    assert event.id == created.headers["webhook-id"]
    version = python_unwrap(versioned, webhook_secret)
    assert isinstance(version, FileVersionCreateEvent)
    assert version.data.file_id == first["fileId"] == second["fileId"]
    assert version.data.version_info is not None
    assert version.data.version_info.id == second["versionInfo"]["id"]
    assert event.id != version.id
    # the older SDKs' signature, by the Node SDK's own verifier
    verified = node_verify([created, versioned], webhook_secret)
    assert [v.get("id") for v in verified] == [event.id, version.id]
    assert [v.get("type") for v in verified] == ["file.created", "file-version.created"]
    # the reference Standard Webhooks library takes the secret base64-encoded, with or without
    # "whsec_" (docs/events.md); given as it is, it verifies nothing
    encoded = base64.b64encode(webhook_secret.encode()).decode()
    for key in (encoded, "whsec_" + encoded):
        assert Webhook(key).verify(created.body, created.headers)["id"] == event.id
    with pytest.raises((WebhookVerificationError, ValueError)):  # or not base64 at all
        Webhook(webhook_secret).verify(created.body, created.headers)
    # a private-key upload is issued to nobody: the receipt says so
    assert created.body.count(b'"receipt":{"credential":"private-key","caller":null') == 1


async def test_the_webhook_secret_is_never_sent_or_logged(
    hook_settings: Callable[..., Settings],
    private_key: str,
    webhook_secret: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with receiving() as receiver:
        receiver.failures = 1
        async with upload_api(hook_settings(receiver.url)) as http:
            await owner_stored(http, private_key, "a.png", PICTURE)
            await settle(receiver, 1)
            metrics = (await http.get("/metrics")).text
    output = capsys.readouterr()
    sent = [d.body + repr(d.headers).encode() for d in receiver.deliveries]
    assert "webhook delivery failed" in output.out + output.err  # the logs were captured
    for place in (output.out, output.err, metrics, *(s.decode() for s in sent)):
        assert webhook_secret not in place


async def test_a_forged_or_altered_event_fails_both_verifiers(
    hook_settings: Callable[..., Settings], private_key: str, webhook_secret: str
) -> None:
    with receiving() as receiver:
        async with upload_api(hook_settings(receiver.url)) as http:
            await owner_stored(http, private_key, "a.png", PICTURE)
            (genuine,) = await settle(receiver, 1)
    altered = Delivery(genuine.body.replace(b"/a.png", b"/b.png"), genuine.headers)
    with pytest.raises(WebhookVerificationError):
        python_unwrap(altered, webhook_secret)
    with pytest.raises(WebhookVerificationError):
        python_unwrap(genuine, webhook_secret + "x")
    results = node_verify([altered, genuine], webhook_secret + "x")
    assert all("error" in r for r in results)
    assert "error" in node_verify([altered], webhook_secret)[0]


async def test_a_receiver_that_fails_gets_the_event_later(
    hook_settings: Callable[..., Settings], private_key: str, webhook_secret: str
) -> None:
    with receiving() as receiver:
        receiver.failures = 2
        async with upload_api(hook_settings(receiver.url)) as http:
            await owner_stored(http, private_key, "a.png", PICTURE)
            (delivered,) = await settle(receiver, 1)
            metrics = (await http.get("/metrics")).text
    assert [d.headers["x-test-answer"] for d in receiver.deliveries] == ["500", "500", "200"]
    assert len({d.headers["webhook-id"] for d in receiver.deliveries}) == 1  # the same event
    assert (
        len(
            {
                d.headers["webhook-timestamp"] + d.headers["webhook-signature"]
                for d in receiver.deliveries
            }
        )
        == 3
    )  # signed afresh each time
    python_unwrap(delivered, webhook_secret)
    assert "upload_auth_webhooks_delivered_total 1.0" in metrics
    assert 'upload_auth_webhooks_retried_total{reason="status"} 2.0' in metrics


async def test_a_receiver_that_times_out_gets_the_event_later(
    hook_settings: Callable[..., Settings], private_key: str
) -> None:
    with receiving() as receiver:
        receiver.slow_seconds, receiver.slow_times = 1.5, 1
        async with upload_api(hook_settings(receiver.url, webhook_timeout=0.5)) as http:
            await owner_stored(http, private_key, "a.png", PICTURE)
            await settle(receiver, 1)
            metrics = (await http.get("/metrics")).text
    assert len({d.headers["webhook-id"] for d in receiver.deliveries}) == 1
    assert 'upload_auth_webhooks_retried_total{reason="timeout"} 1.0' in metrics


async def test_a_receiver_that_is_down_gets_the_event_when_it_is_back(
    hook_settings: Callable[..., Settings], private_key: str, webhook_secret: str
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    async with upload_api(hook_settings(url, webhook_retry_base=0.2)) as http:
        answer = await owner_stored(http, private_key, "a.png", PICTURE)
        await asyncio.sleep(0.6)  # a few attempts against nothing
        with receiving(port, Receiver(url)) as receiver:
            (delivered,) = await settle(receiver, 1)
    assert python_unwrap(delivered, webhook_secret).data.file_id == answer["fileId"]


async def test_a_restart_between_upload_and_delivery_loses_nothing(
    hook_settings: Callable[..., Settings], private_key: str, webhook_secret: str
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    settings = hook_settings(url, webhook_retry_base=0.1)
    async with upload_api(settings) as http:
        answers = [await owner_stored(http, private_key, f"{n}.png", PICTURE) for n in range(3)]
    pending = await SqliteOutbox(settings.storage_dir / "webhooks" / "outbox.sqlite3").counts()
    assert (pending["pending"], pending["dead"]) == (3, 0)
    assert pending["pending_bytes"] > 3 * 500  # three events' bodies
    with receiving(port, Receiver(url)) as receiver:
        async with upload_api(settings):  # the upload API again, same volume
            delivered = await settle(receiver, 3)
    ids = {python_unwrap(d, webhook_secret).data.file_id for d in delivered}
    assert ids == {a["fileId"] for a in answers}


async def test_an_event_in_flight_at_shutdown_is_sent_at_once_after_it(
    hook_settings: Callable[..., Settings], private_key: str
) -> None:
    """Stopping the upload API while a delivery is in flight gives the event back: the next
    start sends it at once, not when the stopped sender's lease (timeout + 30 s) ends."""
    with receiving() as receiver:
        receiver.slow_seconds, receiver.slow_times = 4, 1
        settings = hook_settings(receiver.url, webhook_timeout=10)
        async with upload_api(settings) as http:
            await owner_stored(http, private_key, "a.png", PICTURE)
            await asyncio.sleep(0.5)  # the delivery is waiting for the slow receiver
        async with upload_api(settings):
            (delivered,) = await asyncio.to_thread(receiver.wait_for, 1, 2.5)
    assert delivered.headers["x-test-answer"] == "200"


async def test_the_last_attempt_leaves_a_dead_letter(
    hook_settings: Callable[..., Settings], private_key: str
) -> None:
    with receiving() as receiver:
        receiver.failures = 1000
        settings = hook_settings(receiver.url, webhook_max_attempts=3)
        async with upload_api(settings) as http:
            await owner_stored(http, private_key, "a.png", PICTURE)
            outbox = SqliteOutbox(settings.storage_dir / "webhooks" / "outbox.sqlite3")
            deadline = time.monotonic() + 10
            while (await outbox.counts())["dead"] == 0 and time.monotonic() < deadline:  # noqa: ASYNC110 - another process's state
                await asyncio.sleep(0.05)
            metrics = (await http.get("/metrics")).text
    assert len(receiver.deliveries) == 3
    (letter,) = await outbox.dead_letters()
    assert letter.attempts == 3
    assert letter.error == "status 500"
    assert letter.event_id == receiver.deliveries[0].headers["webhook-id"]
    assert "upload_auth_webhooks_dead_total 1.0" in metrics


async def test_the_answer_never_waits_for_the_receiver(
    hook_settings: Callable[..., Settings], private_key: str
) -> None:
    with receiving() as receiver:
        receiver.slow_seconds, receiver.slow_times = 3, 1
        async with upload_api(hook_settings(receiver.url, webhook_timeout=5)) as http:
            await owner_stored(http, private_key, "warm.png", PICTURE)  # the slow one
            started = time.monotonic()
            await owner_stored(http, private_key, "a.png", PICTURE)
            assert time.monotonic() - started < 1.5
            await settle(receiver, 2)


def test_a_webhook_without_a_secret_does_not_start(make_settings: Callable[..., Settings]) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="always signed"):
        make_settings(webhook_url="http://127.0.0.1:9/hook")
