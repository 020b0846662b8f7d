"""Two upload API replicas (real processes) sharing one real Redis and one storage volume, as
compose and Kubernetes run them: their events wait in Redis while the receiver is down, survive
both replicas' restart, and each upload is delivered as one event, whichever replica sends it."""

import base64
import json
import secrets
import subprocess
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.support.apps import new_private_key, new_public_key
from tests.support.receiver import Receiver, receiving
from tests.support.servers import BIN, Redis, clean_env, free_port, redis_server, running
from tests.support.webhooks import python_unwrap

pytestmark = pytest.mark.e2e

PNG = b"\x89PNG\r\n\x1a\n" + bytes(100)


def test_replicas_share_one_queue_and_lose_nothing_across_a_restart(tmp_path: Path) -> None:
    public, private = new_public_key(), new_private_key()
    secret = "whsec_" + secrets.token_urlsafe(24)
    port = free_port()
    hook = f"http://127.0.0.1:{port}/hook"
    auth = {"Authorization": "Basic " + base64.b64encode(f"{private}:".encode()).decode()}
    with redis_server(tmp_path / "redis.log", persistence=True) as redis_url:
        env = clean_env(
            IMAGEKIT_PUBLIC_KEY=public,
            IMAGEKIT_PRIVATE_KEY=private,
            UPLOAD_AUTH_REDIS_URL=redis_url,
            UPLOAD_AUTH_STORAGE_DIR=str(tmp_path / "uploads"),
            UPLOAD_AUTH_WEBHOOK_URL=hook,
            UPLOAD_AUTH_WEBHOOK_SECRET=secret,
            UPLOAD_AUTH_WEBHOOK_RETRY_BASE="0.2",
            UPLOAD_AUTH_WEBHOOK_TIMEOUT="2",
            UPLOAD_AUTH_MEDIA_WORKERS="0",
        )

        def replicas(stack: ExitStack, round_: str) -> list[str]:
            return [
                stack.enter_context(
                    running(["upload-api"], env=env, log=tmp_path / f"{round_}-{n}.log")
                ).url
                for n in range(2)
            ]

        answers = []
        with ExitStack() as stack:  # the receiver is down all along
            urls = replicas(stack, "first")
            for n in range(12):
                response = httpx.post(
                    urls[n % 2] + "/api/v1/files/upload",
                    data={"fileName": f"f{n}.png", "useUniqueFileName": "false"},
                    files={"file": (f"f{n}.png", PNG)},
                    headers=auth,
                )
                assert response.status_code == 200, response.text
                answers.append(response.json())
            for n in range(4):  # overwrites: one event per new version
                response = httpx.post(
                    urls[(n + 1) % 2] + "/api/v1/files/upload",
                    data={"fileName": f"f{n}.png", "useUniqueFileName": "false"},
                    files={"file": (f"f{n}.png", PNG + b"v2")},
                    headers=auth,
                )
                assert response.status_code == 200, response.text
                answers.append(response.json())
            time.sleep(1)  # a few failed attempts against nothing
        # both replicas stopped; the receiver comes up, then the replicas again
        with receiving(port, Receiver(hook)) as receiver, ExitStack() as stack:
            replicas(stack, "second")
            delivered = receiver.wait_for(len(answers), timeout=30)
            time.sleep(1)  # room for a duplicate, if there were one
    events: dict[tuple[str, str], set[str]] = defaultdict(set)
    for delivery in delivered:
        event = python_unwrap(delivery, secret)
        assert event.data.version_info is not None
        events[(event.data.file_id or "", event.data.version_info.id or "")].add(event.id)
    expected = {(a["fileId"], a["versionInfo"]["id"]) for a in answers}
    assert set(events) == expected  # every upload delivered...
    assert all(len(ids) == 1 for ids in events.values())  # ...as exactly one event


def test_a_full_shared_queue_refuses_uploads_on_every_replica(tmp_path: Path) -> None:
    """The receiver is down and the queue shared in Redis reaches its bound: every replica
    refuses the next upload with ImageKit's 503 (nothing stored), and `upload-auth webhooks`
    shows the queue at its bound (#27: bounded queues, never an upload without its event)."""
    public, private = new_public_key(), new_private_key()
    auth = {"Authorization": "Basic " + base64.b64encode(f"{private}:".encode()).decode()}
    with redis_server(tmp_path / "redis.log") as redis_url:
        env = clean_env(
            IMAGEKIT_PUBLIC_KEY=public,
            IMAGEKIT_PRIVATE_KEY=private,
            UPLOAD_AUTH_REDIS_URL=redis_url,
            UPLOAD_AUTH_STORAGE_DIR=str(tmp_path / "uploads"),
            UPLOAD_AUTH_WEBHOOK_URL=f"http://127.0.0.1:{free_port()}/hook",
            UPLOAD_AUTH_WEBHOOK_SECRET="whsec_" + secrets.token_urlsafe(24),
            UPLOAD_AUTH_WEBHOOK_RETRY_BASE="3600",
            UPLOAD_AUTH_WEBHOOK_MAX_PENDING="100",
            UPLOAD_AUTH_MEDIA_WORKERS="0",
        )
        with ExitStack() as stack:
            urls = [
                stack.enter_context(running(["upload-api"], env=env, log=tmp_path / f"{n}.log")).url
                for n in range(2)
            ]
            statuses = [
                httpx.post(
                    urls[n % 2] + "/api/v1/files/upload",
                    data={"fileName": f"f{n}.png"},
                    files={"file": (f"f{n}.png", PNG)},
                    headers=auth,
                ).status_code
                for n in range(102)
            ]
            refused = [
                httpx.post(
                    url + "/api/v1/files/upload",
                    data={"fileName": "late.png"},
                    files={"file": ("late.png", PNG)},
                    headers=auth,
                )
                for url in urls
            ]
        status = subprocess.run(
            [str(BIN / "upload-auth"), "webhooks", "status"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    assert statuses[:100] == [200] * 100
    assert statuses[100:] == [503, 503]
    for answer in refused:
        assert answer.status_code == 503
        assert answer.json()["message"] == (
            "The upload API cannot queue upload events right now. Please retry."
        )
    assert not list((tmp_path / "uploads" / "files").rglob("late*.png"))
    shared, spool = (json.loads(line) for line in status.stdout.splitlines())
    assert (shared["in"], shared["pending"]) == ("outbox", 100)
    assert (spool["in"], spool["pending"]) == ("spool", 0)


def test_a_redis_restart_loses_no_event_and_doubles_none(tmp_path: Path) -> None:
    """Redis is killed and started again (with its append-only file, as shipped) between
    uploads: the uploads right after it succeed, and every upload's event arrives exactly once
    (the outbox's pooled connections that the restart left stale are retried, so neither adding
    an event nor marking it delivered fails) (#28)."""
    public, private = new_public_key(), new_private_key()
    secret = "whsec_" + secrets.token_urlsafe(24)
    port = free_port()
    hook = f"http://127.0.0.1:{port}/hook"
    auth = {"Authorization": "Basic " + base64.b64encode(f"{private}:".encode()).decode()}
    redis = Redis(tmp_path / "redis", persistence=True)
    redis.start()
    try:
        env = clean_env(
            IMAGEKIT_PUBLIC_KEY=public,
            IMAGEKIT_PRIVATE_KEY=private,
            UPLOAD_AUTH_REDIS_URL=redis.url,
            UPLOAD_AUTH_STORAGE_DIR=str(tmp_path / "uploads"),
            UPLOAD_AUTH_WEBHOOK_URL=hook,
            UPLOAD_AUTH_WEBHOOK_SECRET=secret,
            UPLOAD_AUTH_MEDIA_WORKERS="0",
        )
        with (
            receiving(port, Receiver(hook)) as receiver,
            running(["upload-api"], env=env, log=tmp_path / "api.log") as api,
            ThreadPoolExecutor(8) as pool,
        ):

            def upload(n: int) -> int:
                return httpx.post(
                    api.url + "/api/v1/files/upload",
                    data={"fileName": f"f{n}.png"},
                    files={"file": (f"f{n}.png", PNG)},
                    headers=auth,
                    timeout=30,
                ).status_code

            before = list(pool.map(upload, range(8)))
            receiver.wait_for(8, timeout=20)
            time.sleep(1.2)  # the last second's writes reach the append-only file
            redis.kill()
            redis.start()
            after = list(pool.map(upload, range(8, 24)))
            delivered = receiver.wait_for(24, timeout=30)
            time.sleep(1.5)  # room for a duplicate, if there were one
            ids = [d.headers["webhook-id"] for d in receiver.deliveries]
    finally:
        redis.stop()
    assert before == [200] * 8
    assert after == [200] * 16
    assert len(delivered) >= 24
    assert len(ids) == len(set(ids)) == 24
