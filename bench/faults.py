"""The fault run: mixed traffic against the whole set-up while its parts fail.

    .venv/bin/python -m bench.faults [--seconds 70] [--workers 8] [--persistence both|on|off]
                                     [--set-up shared-disk|object-storage|both] [--check]

Two set-ups. **Shared disk**: one credential service and two upload-API replicas behind nginx,
sharing one redis-server (run as compose and Kubernetes run it, with an append-only file, or as
they ran it before, without persistence), one storage volume (a tmpfs, so that it can be
filled) and one webhook receiver. **Object storage**: the same, but the replicas share no disk
(each has its own spool): the files go to an S3-compatible store (moto's S3-wire server, behind
a forwarder that can cut it off or slow it down) and the ledger, outbox and limits to a Redis
Cluster (three primaries, a replica each); its faults are a failover of the primary holding
the ledger (SIGKILL), the store unreachable for five seconds, the store slow (half a second per
chunk) for five, the receiver down, a replica killed; every accepted file is read back through
both replicas, and the bucket is counted for bytes no record names after a starting replica's
sweep (orphans, target 0).
Workers send a mix for ``--seconds``: v2 and v1 credentials with their uploads, replays of
uploads already accepted, uploads with a tampered field, and junk bodies. Meanwhile, one after
the other (``FAULTS``): Redis is killed with SIGKILL and started again; Redis is wiped
(FLUSHALL: a Redis that lost its data); Redis is stopped for five seconds; the receiver is
stopped for six; the storage is filled until it refuses writes, for five (readiness is watched
meanwhile); one replica is killed with SIGKILL and started again. Afterwards the events are
let drain and every accepted upload is read back from the storage and matched to its events.

Reported per set-up: requests, 5xx outside the fault windows (target 0), 500s anywhere (0),
accepted uploads lost (0), credentials accepted twice (0), accepted uploads without a delivered
event (0) or with more than one event id (0), deliveries of an event already delivered (counted:
at least once allows them), the replicas' ``/readyz`` answering 200 while the storage refused
(0), credentials refused because the ledger forgot (the cost of a wipe), and each process's RSS
drift (MiB, from warm-up to end). With ``--check`` the exit status is 1 when a target is missed.
Bounded: every loop stops at the deadline; every process is stopped at the end; the run's
folder (logs, Redis's files) is removed when every target is met, else named. The tmpfs needs
root (or a user namespace); without it the disk fault is reported as not run, a miss under
``--check``.
"""

import argparse
import asyncio
import base64
import errno
import hashlib
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from app.credential_service.callers.api_keys import hash_api_key, new_api_key
from app.upload_api.storage import LocalStorage
from app.upload_api.storage.objects import ObjectStorage
from bench.harness import memory_kib
from tests.support.apps import new_private_key, new_public_key
from tests.support.buckets import S3Server
from tests.support.redis_sets import ClusterSet
from tests.support.samples import png
from tests.support.servers import (
    Forwarder,
    Redis,
    Server,
    clean_env,
    free_port,
    nginx,
    proxy,
    running,
    upstream,
)

#: After a fault is over, this long still counts as its window (clients and pools settle).
GRACE_SECONDS = 3.0
#: The faults of each set-up, in the order they come, evenly spaced over the run.
FAULTS = {
    "shared disk": (
        "Redis restart",
        "Redis wipe",
        "Redis down",
        "receiver down",
        "disk full",
        "replica killed",
    ),
    "object storage": (
        "Redis failover",
        "store unreachable",
        "store slow",
        "receiver down",
        "replica killed",
    ),
}
#: The storage volume's size, and the free space under which a replica is not ready.
STORAGE_MB = 512
MIN_FREE = "8mb"
#: How long the events may take to drain once the load stops.
DRAIN_SECONDS = 90.0


@dataclass
class Record:
    """What the workers saw."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: list[tuple[float, str, int]] = field(default_factory=list)
    accepted: dict[str, tuple[str, str]] = field(default_factory=dict)  # token -> path, sha256
    replayable: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    twice: int = 0
    forgotten: int = 0

    def saw(self, kind: str, status: int) -> None:
        with self.lock:
            self.statuses.append((time.monotonic(), kind, status))


class Load:
    def __init__(self, base: str, api_key: str, record: Record, seed: int) -> None:
        self.base = base
        self.auth = {"Authorization": f"Bearer {api_key}"}
        self.record = record
        self.random = random.Random(seed)  # noqa: S311 - a repeatable traffic mix, no secret
        self.http = httpx.Client(timeout=15)

    def _upload(self, version: int, fields: dict[str, str], data: bytes) -> httpx.Response:
        return self.http.post(
            f"{self.base}/api/v{version}/files/upload",
            data=fields,
            files={"file": (fields.get("fileName", "f.png"), data, "image/png")},
        )

    def _accepted(self, token: str, response: httpx.Response, data: bytes) -> None:
        digest = hashlib.sha256(data).hexdigest()
        with self.record.lock:
            if token in self.record.accepted:
                self.record.twice += 1
            self.record.accepted[token] = (response.json()["filePath"], digest)

    def _refused_for_forgetting(self, response: httpx.Response) -> None:
        if response.status_code == 400 and "fetch a new credential" in response.text:
            with self.record.lock:
                self.record.forgotten += 1

    def credential_upload(self, version: int) -> None:
        data = png(1 + self.random.randrange(40), 1 + self.random.randrange(40))
        data += self.random.randbytes(16)  # every file its own content
        if version == 2:
            asked = self.http.post(
                self.base + "/v2/token",
                headers=self.auth,
                json={"fileName": "f.png", "fileSize": len(data), "mimeType": "image/png"},
            )
            self.record.saw("v2 credential", asked.status_code)
            if asked.status_code != 200:
                return
            body = asked.json()
            fields = {**body["fields"], "token": body["token"]}
        else:
            asked = self.http.get(self.base + "/v1/auth", headers=self.auth)
            self.record.saw("v1 credential", asked.status_code)
            if asked.status_code != 200:
                return
            cred = asked.json()
            fields = {
                "fileName": "f.png",
                "publicKey": cred["publicKey"],
                "signature": cred["signature"],
                "expire": str(cred["expire"]),
                "token": cred["token"],
            }
        response = self._upload(version, fields, data)
        self.record.saw(f"v{version} upload", response.status_code)
        if response.status_code == 200:
            self._accepted(fields["token"], response, data)
            with self.record.lock:
                self.record.replayable.append((version, fields, data))
        else:
            self._refused_for_forgetting(response)

    def replay(self) -> None:
        with self.record.lock:
            if not self.record.replayable:
                return
            version, fields, data = self.random.choice(self.record.replayable)
        response = self._upload(version, fields, data)
        self.record.saw("replay", response.status_code)
        if response.status_code == 200:
            with self.record.lock:
                self.record.twice += 1

    def tampered(self) -> None:
        asked = self.http.post(
            self.base + "/v2/token",
            headers=self.auth,
            json={"fileName": "t.png", "fileSize": 100, "mimeType": "image/png"},
        )
        if asked.status_code != 200:
            return
        body = asked.json()
        fields = {**body["fields"], "folder": "/elsewhere", "token": body["token"]}
        response = self._upload(2, fields, png())
        self.record.saw("tampered", response.status_code)
        if response.status_code == 200:
            with self.record.lock:
                self.record.twice += 1  # counted with the failures of single use and scope

    def junk(self) -> None:
        body = self.random.randbytes(self.random.randrange(1, 3000))
        boundary = base64.b16encode(self.random.randbytes(6)).decode()
        response = self.http.post(
            self.base + f"/api/v{self.random.choice((1, 2))}/files/upload",
            content=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        self.record.saw("junk", response.status_code)

    def step(self) -> None:
        roll = self.random.random()
        if roll < 0.5:
            self.credential_upload(2)
        elif roll < 0.7:
            self.credential_upload(1)
        elif roll < 0.8:
            self.replay()
        elif roll < 0.9:
            self.tampered()
        else:
            self.junk()


def _start(url: str, argv: list[str], env: dict[str, str], log: Path) -> Server:
    """A server (a replica, the receiver) on a port of our choosing, so that it can come back
    on the same one."""
    with log.open("ab") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    return Server(url, process, log)


@contextmanager
def tmpfs(path: Path, size_mb: int) -> Iterator[bool]:
    """A tmpfs of ``size_mb`` at ``path`` (True), or just the directory if it cannot be
    mounted (False: not root)."""
    path.mkdir(parents=True, exist_ok=True)
    option = f"size={size_mb}m"
    mounted = (
        shutil.which("mount") is not None
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", option, "upload-auth-faults", str(path)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def fill(volume: Path) -> Path:
    """Write a ballast file until the volume refuses (ENOSPC); returns it."""
    ballast = volume / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            chunk = bytes(size)
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return ballast


@dataclass
class Readiness:
    """The replicas' ``/readyz`` answers while the storage refused writes."""

    ready: int = 0
    not_ready: int = 0

    def watch(self, urls: list[str], until: Callable[[], bool]) -> None:
        with httpx.Client(timeout=2) as http:
            while not until():
                for url in urls:
                    try:
                        answer = http.get(url + "/readyz").status_code
                    except httpx.TransportError:
                        continue
                    if answer == 200:
                        self.ready += 1
                    else:
                        self.not_ready += 1
                time.sleep(0.2)


def delivered_events(log: Path) -> tuple[dict[str, set[str]], int, int]:
    """From the receiver's log of deliveries (each answered 200): the event ids by file path,
    how many deliveries, and how many of them repeated an event already delivered."""
    by_path: dict[str, set[str]] = defaultdict(set)
    seen: set[str] = set()
    lines = log.read_text().splitlines() if log.exists() else []
    repeated = 0
    for line in lines:
        event_id, _, file_path = line.partition("\t")
        if not file_path:  # a line being written
            continue
        if event_id in seen:
            repeated += 1
            continue
        seen.add(event_id)
        by_path[file_path].add(event_id)
    return by_path, len(lines), repeated


class Deployment:
    """The parts, started, and the faults done to them: two upload-API replicas sharing one
    storage volume and one redis-server."""

    def __init__(self, root: Path, stack: ExitStack, persistence: bool) -> None:
        self.root = root
        self.store = root / "store"
        self.disk_mounted = stack.enter_context(tmpfs(self.store, STORAGE_MB))
        self.redis = Redis(root / "redis", persistence=persistence)
        self.redis.start()
        stack.callback(self.redis.stop)
        self.backing = {
            "UPLOAD_AUTH_REDIS_URL": self.redis.url,
            "UPLOAD_AUTH_STORAGE_DIR": str(self.store),
        }
        self._start_parts(root, stack)

    def _start_parts(self, root: Path, stack: ExitStack) -> None:
        receiver_port = free_port()
        self.deliveries = root / "deliveries.tsv"
        self.receiver_url = f"http://127.0.0.1:{receiver_port}"
        self.receiver_argv = [
            sys.executable,
            *("-m", "uvicorn", "bench.receiver_app:app", "--no-access-log"),
            *("--host", "127.0.0.1", "--port", str(receiver_port)),
        ]
        self.receiver: Server | None = None
        self.receiver_up()
        stack.callback(self.receiver_down)
        self.api_key = new_api_key()
        self.env = clean_env(
            IMAGEKIT_PUBLIC_KEY=new_public_key(),
            IMAGEKIT_PRIVATE_KEY=new_private_key(),
            **self.backing,
            UPLOAD_AUTH_STORAGE_MIN_FREE=MIN_FREE,
            UPLOAD_AUTH_ACCESS_LOG="false",
            UPLOAD_AUTH_CALLERS=json.dumps(
                {"api_keys": [{"name": "load", "hash": hash_api_key(self.api_key)}]}
            ),
            UPLOAD_AUTH_PROFILES=json.dumps({"default": {"allow_v1": True}}),
            UPLOAD_AUTH_RATE_LIMIT_V1="off",
            UPLOAD_AUTH_RATE_LIMIT_V2="off",
            UPLOAD_AUTH_QUOTA_V2="off",
            UPLOAD_AUTH_WEBHOOK_URL=self.receiver_url + "/hook",
            UPLOAD_AUTH_WEBHOOK_SECRET="whsec_" + secrets.token_urlsafe(24),
            UPLOAD_AUTH_WEBHOOK_TIMEOUT="2",
            UPLOAD_AUTH_WEBHOOK_RETRY_BASE="0.5",
        )
        self.a = stack.enter_context(
            running(["upload-api"], env=self.env_of("a"), log=root / "a.log", ready="/readyz")
        )
        b_port = free_port()
        self.b_argv = [
            str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "upload-auth"),
            *("upload-api", "--host", "127.0.0.1", "--port", str(b_port)),
        ]
        self.b = _start(f"http://127.0.0.1:{b_port}", self.b_argv, self.env_of("b"), root / "b.log")
        stack.callback(self.stop_b)
        port = free_port()
        self.service = stack.enter_context(
            running(
                ["serve"],
                env={**self.env, "UPLOAD_AUTH_UPLOAD_API_URL": f"http://127.0.0.1:{port}"},
                log=root / "service.log",
            )
        )
        stack.enter_context(
            nginx(
                root,
                [
                    upstream("service", [self.service.url.removeprefix("http://")]),
                    upstream(
                        "uploads", [self.a.url.removeprefix("http://"), f"127.0.0.1:{b_port}"]
                    ),
                ],
                [proxy(port, {"/api/": "uploads", "/": "service"})],
            )
        )
        self.base = f"http://127.0.0.1:{port}"
        self.readiness = Readiness()

    def env_of(self, replica: str) -> dict[str, str]:  # noqa: ARG002 - one volume for both
        """A replica's settings."""
        return self.env

    def read_back(self, file_path: str) -> list[bytes | None]:
        """An accepted file's bytes as the storage holds them (None: not there)."""
        path = self.store / "files" / file_path.lstrip("/")
        return [path.read_bytes() if path.is_file() else None]

    def event_id_of(self, file_path: str) -> str | None:
        """The event id the file's record keeps (to find a missing event in the logs)."""
        stored = LocalStorage(self.store).record(file_path)
        return None if stored is None or stored.event is None else str(stored.event["id"])

    def orphans(self) -> int | None:
        """Bytes in the storage that no record names, after a sweep (None: not counted)."""
        return None

    def receiver_up(self) -> None:
        env = {**clean_env(), "RECEIVER_LOG": str(self.deliveries)}
        self.receiver = _start(self.receiver_url, self.receiver_argv, env, self.root / "r.log")

    def receiver_down(self) -> None:
        if self.receiver is not None:
            self.receiver.process.terminate()
            self.receiver.process.wait(timeout=10)
            self.receiver = None

    def stop_b(self) -> None:
        self.b.process.terminate()
        self.b.process.wait(timeout=20)

    # -- the faults: each returns once the part is back ---------------------------------------

    def redis_restart(self) -> None:
        self.redis.kill()
        time.sleep(1.5)
        self.redis.start()

    def redis_wipe(self) -> None:
        with redis.Redis.from_url(self.redis.url) as client:
            client.flushall()

    def redis_down(self) -> None:
        self.redis.stop()
        time.sleep(5)
        self.redis.start()

    def receiver_outage(self) -> None:
        self.receiver_down()
        time.sleep(6)
        self.receiver_up()

    def disk_full(self) -> None:
        if not self.disk_mounted:
            return
        ballast = fill(self.store)
        over = time.monotonic() + 5
        self.readiness.watch([self.a.url, self.b.url], lambda: time.monotonic() > over)
        ballast.unlink()

    def replica_killed(self) -> None:
        self.b.process.kill()
        self.b.process.wait()
        time.sleep(1.0)
        self.b = _start(self.b.url, self.b_argv, self.env_of("b"), self.root / "b.log")

    def do(self, fault: str) -> None:
        {
            "Redis restart": self.redis_restart,
            "Redis wipe": self.redis_wipe,
            "Redis down": self.redis_down,
            "receiver down": self.receiver_outage,
            "disk full": self.disk_full,
            "replica killed": self.replica_killed,
        }[fault]()


class ObjectDeployment(Deployment):
    """Two upload-API replicas with no shared disk (each its own spool), one S3-compatible
    store (moto's S3-wire server, behind a forwarder that can cut or slow it) and a Redis
    Cluster (three primaries, a replica each)."""

    def __init__(self, root: Path, stack: ExitStack, persistence: bool) -> None:
        del persistence  # the cluster's failover is the fault here, not its restarts
        self.root = root
        self.disk_mounted = False
        self.s3 = S3Server(root / "moto.log")
        self.s3.start()
        stack.callback(self.s3.stop)
        self.bucket = self.s3.new_bucket()
        self.door = Forwarder(("127.0.0.1", self.s3.port))
        stack.callback(self.door.close)
        self.cluster = ClusterSet(root / "redis")
        self.cluster.start()
        stack.callback(self.cluster.stop)
        endpoint = f"http://127.0.0.1:{self.door.port}"
        settings = self.s3.settings(self.bucket, s3_endpoint=endpoint, s3_timeout=5)
        self.backing = {
            "UPLOAD_AUTH_REDIS_URL": self.cluster.url,
            **{"UPLOAD_AUTH_" + name.upper(): str(value) for name, value in settings.items()},
        }
        self.backing["UPLOAD_AUTH_S3_PATH_STYLE"] = "true"
        self._start_parts(root, stack)

    def env_of(self, replica: str) -> dict[str, str]:
        return {**self.env, "UPLOAD_AUTH_STORAGE_DIR": str(self.root / f"spool-{replica}")}

    def _bucket(self) -> ObjectStorage:
        spool = self.root / "spool-check"
        return ObjectStorage(spool, self.s3.config(self.bucket))

    def read_back(self, file_path: str) -> list[bytes | None]:
        """Through each replica's ``/files``: every file readable from either."""
        found: list[bytes | None] = []
        with httpx.Client(timeout=30) as http:
            for replica in (self.a, self.b):
                answer = http.get(replica.url + "/files" + file_path)
                found.append(answer.content if answer.status_code == 200 else None)
        return found

    def event_id_of(self, file_path: str) -> str | None:
        async def look() -> str | None:
            storage = self._bucket()
            try:
                stored = await storage.lookup(file_path)
            finally:
                await storage.stop()
            return None if stored is None or stored.event is None else str(stored.event["id"])

        return asyncio.run(look())

    def orphans(self) -> int:
        """After the sweep a starting replica does (every marker, whatever its age): the
        objects no record names, and markers left."""

        async def count() -> int:
            storage = self._bucket()
            try:
                await storage.sweep_pending(older_than=0)
                named = {stored.version_id for stored in await storage.events_since(0)}
            finally:
                await storage.stop()
            keys = self.s3.keys(self.bucket)
            unnamed = [k for k in keys if k.startswith("objects/") and k[8:] not in named]
            return len(unnamed) + sum(1 for k in keys if k.startswith("pending/"))

        return asyncio.run(count())

    def redis_failover(self) -> None:
        self.cluster.fail_over("{upload-auth}:epoch")

    def store_unreachable(self) -> None:
        self.door.unreachable()
        time.sleep(5)
        self.door.restore()

    def store_slow(self) -> None:
        self.door.delay = 0.5
        time.sleep(5)
        self.door.restore()

    def do(self, fault: str) -> None:
        {
            "Redis failover": self.redis_failover,
            "store unreachable": self.store_unreachable,
            "store slow": self.store_slow,
            "receiver down": self.receiver_outage,
            "replica killed": self.replica_killed,
        }[fault]()


def run(set_up: str, persistence: bool, seconds: float, workers: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="faults-"))
    record = Record()
    windows: list[tuple[float, float]] = []
    faults = FAULTS[set_up]
    with ExitStack() as stack:
        made = ObjectDeployment if set_up == "object storage" else Deployment
        parts = made(root, stack, persistence)
        time.sleep(0.5)
        warm = Load(parts.base, parts.api_key, Record(), 0)
        for _ in range(50):
            warm.step()
        measured = (("service", parts.service), ("a", parts.a))
        rss_start = {name: memory_kib(server.process.pid) for name, server in measured}
        start = time.monotonic()
        deadline = start + seconds

        def work(index: int) -> None:
            load = Load(parts.base, parts.api_key, record, index)
            while time.monotonic() < deadline:
                try:
                    load.step()
                except httpx.HTTPError:
                    record.saw("transport error", 599)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
        for thread in threads:
            thread.start()
        for index, fault in enumerate(faults, start=1):
            time.sleep(max(0.0, start + seconds * index / (len(faults) + 1) - time.monotonic()))
            began = time.monotonic()
            parts.do(fault)
            windows.append((began, time.monotonic() + GRACE_SECONDS))
        for thread in threads:
            thread.join()
        rss_end = {name: memory_kib(server.process.pid) for name, server in measured}
        accepted = dict(record.accepted.values())
        drain_until = time.monotonic() + DRAIN_SECONDS
        while time.monotonic() < drain_until:
            by_path, _, _ = delivered_events(parts.deliveries)
            if all(by_path.get(path) for path in accepted):
                break
            time.sleep(0.5)
        by_path, deliveries, repeated = delivered_events(parts.deliveries)
        lost = 0
        for file_path, digest in accepted.items():
            copies = parts.read_back(file_path)
            if any(c is None or hashlib.sha256(c).hexdigest() != digest for c in copies):
                lost += 1
        missing = [path for path in accepted if not by_path.get(path)]
        missing_sample = {path: parts.event_id_of(path) for path in missing[:5]}
        orphans = parts.orphans()
        disk_fault_run = parts.disk_mounted
        readiness = parts.readiness

    in_window = [any(lo <= t <= hi for lo, hi in windows) for t, _, _ in record.statuses]
    outside = [
        (kind, status)
        for (_, kind, status), inside in zip(record.statuses, in_window, strict=True)
        if status >= 500 and not inside
    ]
    label = (
        "Redis Cluster"
        if set_up == "object storage"
        else ("Redis, AOF everysec" if persistence else "Redis, no persistence")
    )
    return {
        "set_up": f"{set_up}, {label}",
        "faults": faults,
        "orphans": orphans,
        "requests": len(record.statuses),
        "by_status": dict(Counter(status for _, _, status in record.statuses)),
        "5xx_outside_windows": len(outside),
        "5xx_outside_detail": Counter(outside),
        "5xx_inside_windows": sum(
            1
            for (_, _, status), inside in zip(record.statuses, in_window, strict=True)
            if status >= 500 and inside
        ),
        "500s": sum(1 for _, _, status in record.statuses if status == 500),
        "accepted_uploads": len(accepted),
        "lost": lost,
        "accepted_twice": record.twice,
        "events_missing": sum(1 for path in accepted if not by_path.get(path)),
        "events_missing_sample": missing_sample,
        "several_event_ids": sum(1 for path in accepted if len(by_path.get(path, ())) > 1),
        "deliveries": deliveries,
        "repeated_deliveries": repeated,
        "disk_fault": "run" if disk_fault_run else "not run (no tmpfs: needs root)",
        "ready_while_full": readiness.ready if disk_fault_run else None,
        "not_ready_while_full": readiness.not_ready,
        "refused_fetch_new": record.forgotten,
        "rss_drift_mib": {
            name: round((rss_end[name] - rss_start[name]) / 1024, 1) for name in rss_start
        },
        "seconds": seconds,
        "logs": str(root),
    }


def missed(report: dict[str, Any]) -> list[str]:
    """The targets a run missed."""
    zero = (
        "5xx_outside_windows",
        "500s",
        "lost",
        "accepted_twice",
        "events_missing",
        "several_event_ids",
    )
    found = [name for name in zero if report[name] != 0]
    if "disk full" in report["faults"] and report["ready_while_full"] != 0:
        found.append("ready_while_full")
    if report["orphans"]:
        found.append("orphans")
    if report["ready_while_full"] is not None and report["not_ready_while_full"] == 0:
        found.append("not_ready_while_full")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=70)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument(
        "--persistence",
        choices=["both", "on", "off"],
        default="both",
        help="the shared-disk set-up's Redis",
    )
    parser.add_argument(
        "--set-up", choices=["shared-disk", "object-storage", "both"], default="both"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    modes = {"both": [True, False], "on": [True], "off": [False]}[args.persistence]
    runs = [("shared disk", persistence) for persistence in modes]
    if args.set_up == "object-storage":
        runs = []
    if args.set_up != "shared-disk":
        runs.append(("object storage", False))
    rows = []
    for set_up, persistence in runs:
        report = run(set_up, persistence, args.seconds, args.workers)
        print(json.dumps(report, default=str), flush=True)
        rows.append(report)
    for set_up, faults in FAULTS.items():
        print(f"\nFaults, {set_up}, in order: {', '.join(faults)}.")
    print(
        "\n| set-up | requests | 5xx outside the fault windows | 5xx inside | 500s "
        "| accepted uploads | lost | accepted twice | events missing | several event ids "
        "| repeated deliveries | ready while the disk was full | refused: fetch a new "
        "credential | orphans | RSS drift MiB (service / replica) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        drift = r["rss_drift_mib"]
        ready = (
            "not run"
            if r["ready_while_full"] is None
            else (f"{r['ready_while_full']} of {r['ready_while_full'] + r['not_ready_while_full']}")
        )
        orphans = "-" if r["orphans"] is None else r["orphans"]
        print(
            f"| {r['set_up']} | {r['requests']:,} | {r['5xx_outside_windows']} | "
            f"{r['5xx_inside_windows']} | {r['500s']} | {r['accepted_uploads']:,} | "
            f"{r['lost']} | {r['accepted_twice']} | {r['events_missing']} | "
            f"{r['several_event_ids']} | {r['repeated_deliveries']} | {ready} | "
            f"{r['refused_fetch_new']} | {orphans} | {drift['service']} / {drift['a']} |"
        )
    misses = {r["set_up"]: missed(r) for r in rows if missed(r)}
    if misses:
        logs = ", ".join(r["logs"] for r in rows)
        print(f"fault run: targets missed: {misses}; the logs: {logs}", file=sys.stderr)
        sys.exit(1 if args.check else 0)
    for r in rows:  # every target met: nothing to look into
        shutil.rmtree(r["logs"], ignore_errors=True)
    print("fault run: every target met")


if __name__ == "__main__":
    main()
