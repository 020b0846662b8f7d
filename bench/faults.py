"""The fault run: mixed traffic against the whole set-up while its parts fail.

    .venv/bin/python -m bench.faults [--seconds 60] [--workers 8] [--persistence both|on|off]

One credential service and two upload-API replicas behind nginx, sharing one redis-server (run
as compose and Kubernetes run it, with an append-only file, or as they ran it before, without
persistence). Workers send a mix for ``--seconds``: v2 and v1 credentials with their uploads,
replays of uploads already accepted, uploads with a tampered field, and junk bodies. A third of
the way in Redis is killed with SIGKILL and started again; two thirds in, one replica is killed
with SIGKILL and started again. Afterwards every accepted upload is read back from the store.

Reported per Redis mode: requests, 5xx outside the injected windows (target 0), accepted uploads
lost (0), credentials accepted twice (0), credentials refused because the ledger forgot (the
cost of running without persistence), and each process's RSS drift (MiB, from warm-up to end).
Bounded: every loop stops at the deadline; every process is stopped at the end.
"""

import argparse
import base64
import hashlib
import json
import random
import subprocess
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.credential_service.callers.api_keys import hash_api_key, new_api_key
from bench.harness import memory_kib
from tests.support.apps import new_private_key, new_public_key
from tests.support.samples import png
from tests.support.servers import (
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
    """A replica on a port of our choosing (so it can come back on the same one)."""
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


def run(persistence: bool, seconds: float, workers: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="faults-"))
    api_key = new_api_key()
    public, private = new_public_key(), new_private_key()
    record = Record()
    windows: list[tuple[float, float]] = []
    with ExitStack() as stack:
        redis = Redis(root / "redis", persistence=persistence)
        redis.start()
        stack.callback(redis.stop)
        env = clean_env(
            IMAGEKIT_PUBLIC_KEY=public,
            IMAGEKIT_PRIVATE_KEY=private,
            UPLOAD_AUTH_REDIS_URL=redis.url,
            UPLOAD_AUTH_STORAGE_DIR=str(root / "store"),
            UPLOAD_AUTH_ACCESS_LOG="false",
            UPLOAD_AUTH_CALLERS=json.dumps(
                {"api_keys": [{"name": "load", "hash": hash_api_key(api_key)}]}
            ),
            UPLOAD_AUTH_PROFILES=json.dumps({"default": {"allow_v1": True}}),
            UPLOAD_AUTH_RATE_LIMIT_V1="off",
            UPLOAD_AUTH_RATE_LIMIT_V2="off",
            UPLOAD_AUTH_QUOTA_V2="off",
        )
        a = stack.enter_context(
            running(["upload-api"], env=env, log=root / "a.log", ready="/readyz")
        )
        b_port = free_port()
        b_argv = [
            str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "upload-auth"),
            "upload-api",
            "--host",
            "127.0.0.1",
            "--port",
            str(b_port),
        ]
        b = _start(f"http://127.0.0.1:{b_port}", b_argv, env, root / "b.log")
        port = free_port()
        service = stack.enter_context(
            running(
                ["serve"],
                env={**env, "UPLOAD_AUTH_UPLOAD_API_URL": f"http://127.0.0.1:{port}"},
                log=root / "service.log",
            )
        )
        stack.enter_context(
            nginx(
                root,
                [
                    upstream("service", [service.url.removeprefix("http://")]),
                    upstream("uploads", [a.url.removeprefix("http://"), f"127.0.0.1:{b_port}"]),
                ],
                [proxy(port, {"/api/": "uploads", "/": "service"})],
            )
        )
        base = f"http://127.0.0.1:{port}"
        time.sleep(0.5)
        warm = Load(base, api_key, Record(), 0)
        for _ in range(50):
            warm.step()
        measured = (("service", service), ("a", a))
        rss_start = {name: memory_kib(server.process.pid) for name, server in measured}
        start = time.monotonic()
        deadline = start + seconds

        def work(index: int) -> None:
            load = Load(base, api_key, record, index)
            while time.monotonic() < deadline:
                try:
                    load.step()
                except httpx.HTTPError:
                    record.saw("transport error", 599)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
        for thread in threads:
            thread.start()
        time.sleep(max(0.0, start + seconds / 3 - time.monotonic()))
        began = time.monotonic()
        redis.kill()
        time.sleep(1.5)
        redis.start()
        windows.append((began, time.monotonic() + GRACE_SECONDS))
        time.sleep(max(0.0, start + 2 * seconds / 3 - time.monotonic()))
        began = time.monotonic()
        b.process.kill()
        b.process.wait()
        time.sleep(1.0)
        b = _start(b.url, b_argv, env, root / "b.log")
        windows.append((began, time.monotonic() + GRACE_SECONDS))
        for thread in threads:
            thread.join()
        rss_end = {name: memory_kib(server.process.pid) for name, server in measured}
        b.process.terminate()
        b.process.wait(timeout=20)

    outside = [
        (t, kind, status)
        for t, kind, status in record.statuses
        if status >= 500 and not any(lo <= t <= hi for lo, hi in windows)
    ]
    inside = sum(
        1
        for t, _, status in record.statuses
        if status >= 500 and any(lo <= t <= hi for lo, hi in windows)
    )
    lost = 0
    for file_path, digest in record.accepted.values():
        path = root / "store" / "files" / file_path.lstrip("/")
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            lost += 1
    return {
        "redis": "AOF everysec" if persistence else "no persistence",
        "requests": len(record.statuses),
        "by_status": dict(Counter(status for _, _, status in record.statuses)),
        "5xx_outside_windows": len(outside),
        "5xx_outside_detail": Counter((kind, status) for _, kind, status in outside),
        "5xx_inside_windows": inside,
        "accepted_uploads": len(record.accepted),
        "lost": lost,
        "accepted_twice": record.twice,
        "refused_fetch_new": record.forgotten,
        "rss_drift_mib": {
            name: round((rss_end[name] - rss_start[name]) / 1024, 1) for name in rss_start
        },
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--persistence", choices=["both", "on", "off"], default="both")
    args = parser.parse_args()
    modes = {"both": [True, False], "on": [True], "off": [False]}[args.persistence]
    rows = []
    for persistence in modes:
        report = run(persistence, args.seconds, args.workers)
        print(json.dumps(report, default=str), flush=True)
        rows.append(report)
    print(
        "\n| Redis | requests | 5xx outside the fault windows | 5xx inside | accepted uploads "
        "| lost | accepted twice | refused: fetch a new credential | RSS drift MiB "
        "(service / replica) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        drift = r["rss_drift_mib"]
        print(
            f"| {r['redis']} | {r['requests']:,} | {r['5xx_outside_windows']} | "
            f"{r['5xx_inside_windows']} | {r['accepted_uploads']:,} | {r['lost']} | "
            f"{r['accepted_twice']} | {r['refused_fetch_new']} | "
            f"{drift['service']} / {drift['a']} |"
        )


if __name__ == "__main__":
    main()
