"""Many replicas on loopback with real parts: nginx load-balancing three credential-service
processes and two upload API processes, one redis-server, a few thousand uploads; one replica
of each kind killed mid-run, and a key rotation during the load."""

import asyncio
import json
import signal
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from app.credential_service.callers.api_keys import hash_api_key, new_api_key
from tests.support.apps import new_private_key, new_public_key
from tests.support.servers import (
    Server,
    clean_env,
    free_port,
    nginx,
    proxy,
    redis_server,
    running,
    upstream,
)

pytestmark = pytest.mark.e2e

UPLOADS = 2000
CONCURRENCY = 32
V1_LIMIT = 25


@dataclass
class Cluster:
    root: Path
    config: Path
    keys: dict[str, tuple[str, Path]]
    services: list[Server]
    upload_apis: list[Server]
    service_url: str
    upload_url: str
    storage: Path
    loader_key: str
    limited_key: str

    def write_config(self, pairs: list[str], signing: str) -> None:
        lines = [f'signing_key = "{self.keys[signing][0]}"']
        for name in pairs:
            public, private_file = self.keys[name]
            lines += [
                "[[keys]]",
                f'public_key = "{public}"',
                f'private_key_file = "{private_file}"',
            ]
        lines += [
            "[[callers.api_keys]]",
            'name = "loader"',
            f'hash = "{hash_api_key(self.loader_key)}"',
            "[[callers.api_keys]]",
            'name = "limited"',
            f'hash = "{hash_api_key(self.limited_key)}"',
            "[profiles.default]",
            "allow_v1 = true",
        ]
        tmp = self.config.with_suffix(".new")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(self.config)  # as a ConfigMap update lands: all at once

    def reload(self, servers: list[Server]) -> None:
        for server in servers:
            if server.process.poll() is None:
                server.process.send_signal(signal.SIGHUP)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    keys = {}
    for name in ("a", "b"):
        private = root / f"key-{name}.private"
        private.write_text(new_private_key() + "\n")
        keys[name] = (new_public_key(), private)
    cluster_stub = Cluster(
        root,
        root / "upload-auth.toml",
        keys,
        [],
        [],
        "",
        "",
        root / "shared",
        new_api_key(),
        new_api_key(),
    )
    cluster_stub.write_config(["a"], "a")
    service_port, upload_port = free_port(), free_port()
    base_env = {
        "UPLOAD_AUTH_CONFIG_FILE": str(cluster_stub.config),
        "UPLOAD_AUTH_ACCESS_LOG": "false",
        "UPLOAD_AUTH_STORAGE_DIR": str(root / "shared"),
        "UPLOAD_AUTH_RATE_LIMIT_V1": f"{V1_LIMIT}/minute",
        "UPLOAD_AUTH_RATE_LIMIT_V2": "100000/minute",
        "UPLOAD_AUTH_QUOTA_V2": "off",
        "UPLOAD_AUTH_UPLOAD_API_URL": f"http://127.0.0.1:{upload_port}",
    }
    with redis_server(root / "redis.log") as redis_url, ExitStack() as stack:
        env = clean_env(**base_env, UPLOAD_AUTH_REDIS_URL=redis_url)
        services = [
            stack.enter_context(running(["serve"], env=env, log=root / f"service-{i}.log"))
            for i in range(3)
        ]
        upload_apis = [
            stack.enter_context(
                running(["upload-api"], env=env, ready="/readyz", log=root / f"upload-api-{i}.log")
            )
            for i in range(2)
        ]

        def addresses(group: list[Server]) -> list[str]:
            return [s.url.removeprefix("http://") for s in group]

        proxying = nginx(
            root,
            [upstream("service", addresses(services)), upstream("uploads", addresses(upload_apis))],
            [proxy(service_port, {"/": "service"}), proxy(upload_port, {"/": "uploads"})],
        )
        stack.enter_context(proxying)
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{service_port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        cluster_stub.services, cluster_stub.upload_apis = services, upload_apis
        cluster_stub.service_url = f"http://127.0.0.1:{service_port}"
        cluster_stub.upload_url = f"http://127.0.0.1:{upload_port}"
        yield cluster_stub


@dataclass
class Load:
    accepted: dict[str, bytes] = field(default_factory=dict)  # filePath -> bytes sent
    statuses: Counter[int] = field(default_factory=Counter)
    retries: int = 0
    replays_refused: int = 0
    signers: Counter[str] = field(default_factory=Counter)


def content(i: int) -> bytes:
    return f"upload {i}\n".encode() * (1 + i % 40)


async def one_upload(
    http: httpx.AsyncClient, cluster: Cluster, i: int, load: Load, replay: bool
) -> None:
    data = content(i)
    auth = {"Authorization": f"Bearer {cluster.loader_key}"}
    for _attempt in range(20):
        try:
            grant = await http.post(
                cluster.service_url + "/v2/token",
                headers=auth,
                json={"fileName": f"f{i:05d}.txt", "fileSize": len(data), "mimeType": "text/plain"},
            )
            load.statuses[grant.status_code] += 1
            if grant.status_code >= 500:
                load.retries += 1
                continue
            assert grant.status_code == 200, grant.text
            body = grant.json()
            form = {**body["fields"], "token": body["token"]}
            response = await http.post(
                body["uploadUrl"], data=form, files={"file": (f"f{i:05d}.txt", data)}
            )
            load.statuses[response.status_code] += 1
            if response.status_code >= 500:
                load.retries += 1
                continue
            assert response.status_code == 200, response.text
            load.accepted[response.json()["filePath"]] = data
            header = body["token"].split(".")[0]
            load.signers[json.loads(_b64(header))["kid"]] += 1
            if replay:  # the same credential, straight to every upload replica
                for server in cluster.upload_apis:
                    again = await http.post(
                        server.url + "/api/v2/files/upload",
                        data=form,
                        files={"file": (f"f{i:05d}.txt", data)},
                    )
                    assert again.status_code == 400
                    assert "has been used before" in again.json()["message"]
                    load.replays_refused += 1
            return
        except httpx.TransportError:
            load.retries += 1
    raise AssertionError(f"upload {i} never succeeded")


def _b64(segment: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


async def drive(cluster: Cluster, load: Load) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(UPLOADS):
        queue.put_nowait(i)
    killed = rotated = switched = False

    async def worker(http: httpx.AsyncClient) -> None:
        nonlocal killed, rotated, switched
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            done = len(load.accepted)
            if not rotated and done >= 500:
                rotated = True  # 1. everyone learns the new pair; signing stays on the old
                cluster.write_config(["a", "b"], "a")
                cluster.reload(cluster.services + cluster.upload_apis)
            if not switched and done >= 800:
                switched = True  # 2. sign with the new pair; the old one still verifies
                cluster.write_config(["a", "b"], "b")
                cluster.reload(cluster.services + cluster.upload_apis)
            if not killed and done >= 1000:
                killed = True  # one replica of each kind dies mid-run
                cluster.services[0].process.kill()
                cluster.upload_apis[0].process.kill()
            await one_upload(http, cluster, i, load, replay=i < 100)

    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        await asyncio.gather(*(worker(http) for _ in range(CONCURRENCY)))


def test_replicas_under_load(cluster: Cluster) -> None:
    """Every upload accepted exactly once and stored whole; replays refused on every replica;
    the per-caller limit holds across replicas; killed replicas and a key rotation cost nothing
    but retried requests."""
    load = Load()
    asyncio.run(drive(cluster, load))

    # every logical upload got through; the only non-200 answers were 5xx that were retried
    assert len(load.accepted) == UPLOADS
    assert set(load.statuses) <= {200, 502, 503, 504}
    assert sum(n for status, n in load.statuses.items() if status >= 500) <= load.retries
    assert load.replays_refused == 200

    # the rotation happened under load and nothing that should succeed failed
    old, new = cluster.keys["a"][0], cluster.keys["b"][0]
    assert load.signers[old] > 0
    assert load.signers[new] > 0

    # every accepted upload is stored, whole; nothing half-written was published
    files = cluster.storage / "files"
    for file_path, data in load.accepted.items():
        assert (files / file_path.lstrip("/")).read_bytes() == data
    for path in files.rglob("*"):
        if path.is_file():
            index = int(path.name[1:6])
            assert path.read_bytes() == content(index)

    # the per-caller limit holds across the surviving replicas
    auth = {"Authorization": f"Bearer {cluster.limited_key}"}
    statuses = Counter(
        httpx.get(cluster.service_url + "/v1/auth", headers=auth).status_code
        for _ in range(V1_LIMIT + 15)
    )
    assert statuses == {200: V1_LIMIT, 429: 15}
