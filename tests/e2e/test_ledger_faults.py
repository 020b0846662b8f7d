"""Single use that survives Redis: a Redis that restarts without its data makes clients fetch
new credentials but accepts none twice; stale pooled connections cost no request; readiness
tells the truth; a killed replica's half-written uploads go when it restarts, a live one's
stay."""

import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from app.core.keys import KeyPair
from app.credential_service.callers.api_keys import hash_api_key, new_api_key
from tests.support.apps import FakeClock, new_private_key, new_public_key
from tests.support.samples import png
from tests.support.servers import Redis, Server, clean_env, running
from tests.support.uploads import leftovers, v2_fields

pytestmark = pytest.mark.e2e


@dataclass
class Stack:
    redis: Redis
    service: Server
    upload_api: Server
    pair: KeyPair
    api_key: str

    def v1(self) -> dict[str, str]:
        answer = httpx.get(
            self.service.url + "/v1/auth", headers={"Authorization": f"Bearer {self.api_key}"}
        )
        assert answer.status_code == 200, answer.text
        cred = answer.json()
        return {
            "fileName": "a.png",
            "publicKey": cred["publicKey"],
            "token": cred["token"],
            "expire": str(cred["expire"]),
            "signature": cred["signature"],
        }

    def v2(self) -> dict[str, str]:
        return v2_fields(self.pair, FakeClock(time.time()), png())

    def v2_issued(self) -> dict[str, str]:
        """A v2 credential as the credential service issues it (not made by the test)."""
        answer = httpx.post(
            self.service.url + "/v2/token",
            json={"fileName": "a.png", "fileSize": len(png()), "mimeType": "image/png"},
            headers={"Authorization": f"Bearer {self.api_key}"},
        )
        assert answer.status_code == 200, answer.text
        return {**answer.json()["fields"], "token": answer.json()["token"]}

    def upload(self, fields: dict[str, str], version: int) -> httpx.Response:
        return httpx.post(
            f"{self.upload_api.url}/api/v{version}/files/upload",
            data=fields,
            files={"file": ("a.png", png())},
            timeout=30,
        )


@pytest.fixture(params=[False, True], ids=["persistence off", "persistence on (AOF)"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """Redis as compose ran it before (no persistence) and as it runs it now (AOF), a
    credential service and an upload API sharing it."""
    redis = Redis(tmp_path / "redis", persistence=request.param)
    redis.start()
    public, private, api_key = new_public_key(), new_private_key(), new_api_key()
    env = clean_env(
        IMAGEKIT_PUBLIC_KEY=public,
        IMAGEKIT_PRIVATE_KEY=private,
        UPLOAD_AUTH_REDIS_URL=redis.url,
        UPLOAD_AUTH_STORAGE_DIR=str(tmp_path / "store"),
        UPLOAD_AUTH_CALLERS=json.dumps(
            {"api_keys": [{"name": "app", "hash": hash_api_key(api_key)}]}
        ),
        UPLOAD_AUTH_PROFILES=json.dumps({"default": {"allow_v1": True}}),
    )
    try:
        with running(["upload-api"], env=env, log=tmp_path / "api.log", ready="/readyz") as api:
            service_env = {**env, "UPLOAD_AUTH_UPLOAD_API_URL": api.url}
            with running(["serve"], env=service_env, log=tmp_path / "service.log") as service:
                yield Stack(redis, service, api, KeyPair(public, private.encode()), api_key)
    finally:
        redis.stop()


def restart(redis: Redis) -> None:
    """Kill -9 and start again on the same port, after the last second's writes reached the
    AOF (with persistence on, fsync is once a second)."""
    time.sleep(1.2)
    redis.kill()
    redis.start()


def test_a_redis_restart_accepts_no_credential_twice(stack: Stack) -> None:
    """Credentials used before a restart are refused after it, with or without persistence;
    without it, the refusal says to fetch a new credential, and a new one works."""
    used = [(stack.v1(), 1) for _ in range(3)] + [(stack.v2(), 2) for _ in range(3)]
    for fields, version in used:
        assert stack.upload(fields, version).status_code == 200
    restart(stack.redis)
    messages = []
    for fields, version in used:
        replay = stack.upload(fields, version)
        assert replay.status_code == 400, replay.text
        messages.append(replay.json()["message"])
        assert "has been used before" in messages[-1]
        assert fields["token"] not in messages[-1] or version == 1  # no JWT echoed
    time.sleep(1.1)  # a ledger that forgot refuses what was issued up to a second after
    assert stack.upload(stack.v1(), 1).status_code == 200
    assert stack.upload(stack.v2(), 2).status_code == 200
    logs = stack.upload_api.output()
    forgot = ["fetch a new credential" in message for message in messages]
    if stack.redis.persistence:
        assert not any(forgot)
        assert "lost its data" not in logs
    else:
        assert all(forgot)
        assert logs.count("lost its data") == 1


def test_credentials_issued_right_after_a_wipe_work_at_once(stack: Stack) -> None:
    """Redis loses its data (FLUSHALL): the first credential issued afterwards notices, begins
    the new epoch and is stamped no earlier, so every credential the service hands out from
    then on is accepted at once, while those issued before the loss are refused."""
    before = [(stack.v1(), 1), (stack.v2_issued(), 2)]
    used = [(stack.v1(), 1), (stack.v2_issued(), 2)]
    for fields, version in used:
        assert stack.upload(fields, version).status_code == 200
    redis.Redis.from_url(stack.redis.url).flushall()
    fresh = [(stack.v1(), 1), (stack.v2_issued(), 2), (stack.v1(), 1), (stack.v2_issued(), 2)]
    assert [stack.upload(f, v).status_code for f, v in fresh] == [200] * 4
    for fields, version in before + used:
        refused = stack.upload(fields, version)
        assert refused.status_code == 400, refused.text
        assert "fetch a new credential" in refused.json()["message"]
    assert stack.service.output().count("lost its data") == 1


def test_stale_pooled_connections_cause_no_503_after_a_restart(stack: Stack) -> None:
    """Sixteen pooled connections, all broken by a restart: the next burst of sixteen uploads
    succeeds, each stale connection retried on a fresh one."""
    with ThreadPoolExecutor(16) as pool:
        warm = list(pool.map(lambda _: stack.upload(stack.v2(), 2).status_code, range(32)))
        assert warm == [200] * 32
        restart(stack.redis)
        # Readiness notices a ledger that forgot (persistence off) and begins its epoch a
        # second ahead: credentials made after that are good.
        assert httpx.get(stack.upload_api.url + "/readyz").status_code == 200
        time.sleep(1.1)
        burst = list(pool.map(lambda _: stack.upload(stack.v2(), 2), range(16)))
    assert [r.status_code for r in burst] == [200] * 16, [r.text for r in burst]


def test_readiness_and_the_log_follow_the_ledger(stack: Stack) -> None:
    """Redis down: /readyz 503, uploads 503, the cause logged once at warning however many
    requests fail; Redis back: ready again, the recovery logged."""
    stack.redis.kill()
    assert httpx.get(stack.upload_api.url + "/readyz").status_code == 503
    statuses = [stack.upload(stack.v2(), 2).status_code for _ in range(5)]
    assert statuses == [503] * 5
    stack.redis.start()
    assert httpx.get(stack.upload_api.url + "/readyz").status_code == 200
    lines = [json.loads(line) for line in stack.upload_api.output().splitlines() if "{" in line]
    down = [line for line in lines if line["msg"] == "credential ledger (Redis) unavailable"]
    assert len(down) == 1
    assert down[0]["level"] == "warning"
    assert "cause" in down[0]
    assert any(line["msg"] == "credential ledger (Redis) answers again" for line in lines)


def _stall_upload(url: str, private_key: str) -> socket.socket:
    """Start a server-side upload and send only the first 256 KiB of a 1 MiB file."""
    import base64

    boundary = "stall"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="fileName"\r\n\r\nbig.png\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    total = len(head) + 1024 * 1024 + len(f"\r\n--{boundary}--\r\n")
    host, port = url.removeprefix("http://").split(":")
    auth = base64.b64encode(f"{private_key}:".encode()).decode()
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        (
            "POST /api/v1/files/upload HTTP/1.1\r\n"
            f"Host: {host}\r\nAuthorization: Basic {auth}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {total}\r\n\r\n"
        ).encode()
        + head
        + png(4, 4)
        + b"\0" * (256 * 1024)
    )
    return sock


def _parts(storage: Path) -> dict[Path, list[Path]]:
    """Uploads in flight, by the process folder that holds them."""
    found: dict[Path, list[Path]] = {}
    for part in leftovers(storage):
        found.setdefault(part.parent, []).append(part)
    return found


def _wait_for(predicate: object, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_a_killed_replicas_uploads_in_flight_go_when_it_restarts(tmp_path: Path) -> None:
    """Two replicas on one volume, each mid-upload; one is killed with SIGKILL and restarted:
    its half-written file is removed at start-up, the live replica's is left alone."""
    private = new_private_key()
    env = clean_env(
        IMAGEKIT_PUBLIC_KEY=new_public_key(),
        IMAGEKIT_PRIVATE_KEY=private,
        UPLOAD_AUTH_STORAGE_DIR=str(tmp_path / "store"),
    )
    storage = tmp_path / "store"
    with (
        running(["upload-api"], env=env, log=tmp_path / "live.log") as live,
        running(["upload-api"], env=env, log=tmp_path / "doomed.log") as doomed,
    ):
        stalled = [_stall_upload(live.url, private), _stall_upload(doomed.url, private)]
        _wait_for(lambda: len(_parts(storage)) == 2)
        before = _parts(storage)
        doomed.process.kill()
        doomed.process.wait()
        assert len(_parts(storage)) == 2  # nothing removed it: the process had no chance
        with running(["upload-api"], env=env, log=tmp_path / "restarted.log") as restarted:
            after = _parts(storage)
            assert '"stale_uploads_removed":1' in restarted.output()
        assert len(after) == 1
        ((folder, parts),) = after.items()
        assert before[folder] == parts  # the live replica's upload, untouched
        for sock in stalled:
            sock.close()


def test_a_full_redis_refuses_uploads_and_readiness_says_so(tmp_path: Path) -> None:
    """Redis at its maxmemory (noeviction, as shipped): uploads get ImageKit's 503 (a credential
    that cannot be burned is never accepted) and /readyz says not ready; with room again, both
    recover (#28: what happens when Redis is full)."""
    server = Redis(tmp_path / "redis", maxmemory="64mb")
    server.start()
    public, private = new_public_key(), new_private_key()
    pair = KeyPair(public, private.encode())
    env = clean_env(
        IMAGEKIT_PUBLIC_KEY=public,
        IMAGEKIT_PRIVATE_KEY=private,
        UPLOAD_AUTH_REDIS_URL=server.url,
        UPLOAD_AUTH_STORAGE_DIR=str(tmp_path / "store"),
        UPLOAD_AUTH_MEDIA_WORKERS="0",
    )
    try:
        with running(["upload-api"], env=env, log=tmp_path / "api.log", ready="/readyz") as api:

            def upload() -> httpx.Response:
                fields = v2_fields(pair, FakeClock(time.time()), png())
                return httpx.post(
                    api.url + "/api/v2/files/upload",
                    data=fields,
                    files={"file": ("a.png", png())},
                    timeout=30,
                )

            assert upload().status_code == 200
            admin = redis.Redis.from_url(server.url)
            for n in range(256):  # data of its own, then a maxmemory below what it holds
                admin.set(f"other:{n}", b"x" * 4096)
            admin.config_set("maxmemory", "1mb")
            with pytest.raises(redis.exceptions.ResponseError, match="maxmemory"):
                admin.set("one:more", b"x")
            full = upload()
            not_ready = httpx.get(api.url + "/readyz")
            admin.config_set("maxmemory", "64mb")  # room again
            admin.close()
            ready_again = httpx.get(api.url + "/readyz")
            recovered = upload()
    finally:
        server.stop()
    assert full.status_code == 503
    assert full.json()["message"] == "The upload API cannot check tokens right now. Please retry."
    assert not_ready.status_code == 503
    assert ready_again.status_code == 200
    assert recovered.status_code == 200, recovered.text
