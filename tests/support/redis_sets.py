"""Redis as production runs it, made of Debian's ``redis-server`` processes on free loopback
ports: a Sentinel set (a primary, a replica, three sentinels) and a Cluster (three primaries,
each with a replica). A test may kill a primary and wait for the failover."""

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from tests.support.servers import (
    free_port,
    kill_process,
    redis_answers,
    require_program,
    stop_process,
)

#: Failures are noticed fast (production uses seconds; the mechanism is the same).
DOWN_AFTER_MS: Final = 1000


def command(port: int, *args: str, timeout: float = 2.0) -> str:
    """One command to the node on ``port`` through redis-cli; its output."""
    done = subprocess.run(
        [require_program("redis-cli"), "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.stdout.strip()


def _synced(replica_port: int) -> bool:
    return "master_link_status:up" in command(replica_port, "INFO", "replication")


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def free_cluster_port() -> int:
    """A free port whose cluster bus port (10,000 above) is free and valid too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


class Node:
    """One redis-server (or sentinel) process."""

    def __init__(
        self,
        root: Path,
        name: str,
        *args: str,
        sentinel_conf: str | None = None,
        cluster: bool = False,
    ) -> None:
        self.cluster = cluster
        self.port = free_cluster_port() if cluster else free_port()
        self.dir = root / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = self.dir / "log"
        self.args = args
        self.sentinel_conf = sentinel_conf
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start on the chosen port; on another if someone took it meanwhile."""
        for _ in range(5):
            if self._launch():
                return
            self.port = free_cluster_port() if self.cluster else free_port()
        raise AssertionError(f"redis never started:\n{self.log.read_text()}")

    def _launch(self) -> bool:
        argv = [require_program("redis-server")]
        if self.sentinel_conf is not None:  # a sentinel rewrites its own file
            conf = self.dir / "sentinel.conf"
            conf.write_text(self.sentinel_conf)
            argv += [str(conf), "--sentinel"]
        argv += ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)]
        argv += ["--save", "", "--appendonly", "no"]
        if self.sentinel_conf is None:  # a replica syncs at once, not after 5 s
            argv += ["--repl-diskless-sync-delay", "0"]
        if self.cluster:
            argv += ["--cluster-config-file", str(self.dir / f"nodes-{self.port}.conf")]
        argv += self.args
        with self.log.open("ab") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        self.process = process
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:  # the port was taken: another try
                self.process = None
                return False
            if redis_answers(self.port) and (
                f"process_id:{process.pid}" in command(self.port, "INFO", "server")
            ):
                return True
            time.sleep(0.05)
        raise AssertionError(f"redis on {self.port} did not answer:\n{self.log.read_text()}")

    def kill(self) -> None:
        if self.process is not None:
            kill_process(self.process)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


class _Set:
    """Nodes started together: all of them stopped if one cannot be started."""

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class SentinelSet(_Set):
    """A primary, one replica, three sentinels watching them (quorum 2)."""

    SERVICE: Final = "uploads"

    def __init__(self, root: Path) -> None:
        self.primary = Node(root, "primary")
        self.replica = Node(root, "replica")
        self.sentinels: list[Node] = []
        self.root = root

    def _start(self) -> None:
        self.primary.start()
        self.replica.args = ("--replicaof", "127.0.0.1", str(self.primary.port))
        self.replica.start()
        conf = (
            f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.primary.port} 2\n"
            f"sentinel down-after-milliseconds {self.SERVICE} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {self.SERVICE} 5000\n"
            f"sentinel parallel-syncs {self.SERVICE} 1\n"
        )
        self.sentinels = [Node(self.root, f"sentinel-{i}", sentinel_conf=conf) for i in range(3)]
        for sentinel in self.sentinels:
            sentinel.start()
        wait_for(lambda: _synced(self.replica.port), "the replica in sync")

    @property
    def url(self) -> str:
        nodes = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{nodes}/{self.SERVICE}"

    def primary_port(self) -> int:
        answer = command(
            self.sentinels[0].port, "SENTINEL", "get-master-addr-by-name", self.SERVICE
        )
        return int(answer.split()[-1])

    def fail_over(self) -> int:
        """Kill the primary (SIGKILL); wait until the sentinels have promoted the replica; its
        port."""
        old = self.primary_port()
        node = self.primary if self.primary.port == old else self.replica
        node.kill()
        wait_for(lambda: self.primary_port() != old, "the sentinels' failover")
        new = self.primary_port()
        wait_for(lambda: "role:master" in command(new, "INFO", "replication"), "the promotion")
        return new

    def stop(self) -> None:
        for node in [*self.sentinels, self.replica, self.primary]:
            node.stop()


class ClusterSet(_Set):
    """Three primaries with a replica each, slots spread by ``redis-cli --cluster create``."""

    def __init__(self, root: Path) -> None:
        args = (
            "--cluster-enabled",
            "yes",
            "--cluster-node-timeout",
            str(DOWN_AFTER_MS),
        )
        self.nodes = [Node(root, f"node-{i}", *args, cluster=True) for i in range(6)]

    def _start(self) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        made = subprocess.run(
            [
                require_program("redis-cli"),
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if made.returncode != 0:
            raise AssertionError(f"redis-cli --cluster create failed:\n{made.stdout}{made.stderr}")
        wait_for(self._ok, "the cluster's state ok")
        wait_for(self._replicas_synced, "the replicas in sync")

    def _replicas_synced(self) -> bool:
        replicas = [n for n in self.nodes if "role:slave" in command(n.port, "INFO", "replication")]
        return len(replicas) == 3 and all(_synced(n.port) for n in replicas)

    def _ok(self) -> bool:
        alive = [n for n in self.nodes if n.process is not None]
        return all("cluster_state:ok" in command(n.port, "CLUSTER", "INFO") for n in alive)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:3])

    def primary_of(self, key: str) -> Node:
        """The node serving ``key``'s slot now."""
        found = self._serving(key)
        if found is None:
            raise AssertionError(f"no primary serves {key}")
        return found

    def _serving(self, key: str) -> Node | None:
        alive = next(n for n in self.nodes if n.process is not None)
        slot = int(command(alive.port, "CLUSTER", "KEYSLOT", key))
        for line in command(alive.port, "CLUSTER", "NODES").splitlines():
            fields = line.split()
            if "master" not in fields[2] or "fail" in fields[2]:
                continue
            port = int(fields[1].split("@")[0].rpartition(":")[2])
            for span in fields[8:]:
                low, _, high = span.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    return next(n for n in self.nodes if n.port == port)
        return None

    def fail_over(self, key: str) -> Node:
        """Kill the primary serving ``key`` (SIGKILL); wait until its replica took over."""
        old = self.primary_of(key)
        old.kill()
        wait_for(
            lambda: self._ok() and self._serving(key) not in (None, old), "the cluster's failover"
        )
        return self.primary_of(key)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
