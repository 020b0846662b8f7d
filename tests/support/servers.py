"""Real servers for end-to-end tests: our own commands, started on free loopback ports."""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Final, NoReturn

import httpx

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not ended within ten seconds."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def kill_process(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL, as a crashed or evicted server goes: no chance to save anything."""
    process.kill()
    process.wait(timeout=10)


def redis_answers(port: int) -> bool:
    """Whether a Redis (or a sentinel) on the loopback ``port`` answers PING."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[str]:
    """A test's own HTTP server (a stand-in for the outside world) answering in daemon threads
    until the block ends; yields its base URL."""
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def clean_env(**env: str) -> dict[str, str]:
    """The parent's environment without any upload-auth or ImageKit setting, plus ``env``."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("UPLOAD_AUTH_", "IMAGEKIT_", "IMAGE_KIT_"))
    }
    return {**base, **env}


@contextmanager
def running(
    command: list[str],
    *,
    env: Mapping[str, str],
    log: Path,
    ready: str = "/healthz",
    timeout: float = 20.0,
) -> Iterator[Server]:
    """Start ``upload-auth <command> --port N`` and wait until ``ready`` answers 200.

    A command starting with ``-m`` runs ``python -m ...`` instead (another ASGI app under
    uvicorn, for instance), with the same ``--host`` and ``--port``.
    """
    port = free_port()
    program = [sys.executable] if command[:1] == ["-m"] else [str(BIN / "upload-auth")]
    argv = [*program, *command, "--host", "127.0.0.1", "--port", str(port)]
    with running_argv(argv, port=port, env=env, log=log, ready=ready, timeout=timeout) as server:
        yield server


@contextmanager
def running_role(role: str, root: Path, **settings: str) -> Iterator[Server]:
    """``upload-auth serve``, ``upload-api`` or ``dev`` with a fresh key pair, its storage under
    ``root`` and these ``UPLOAD_AUTH_*`` settings (by name, without the prefix); ``serve`` in
    development mode, as it has no callers configured."""
    from tests.support.apps import new_private_key, new_public_key

    env = clean_env(
        IMAGEKIT_PUBLIC_KEY=new_public_key(),
        IMAGEKIT_PRIVATE_KEY=new_private_key(),
        UPLOAD_AUTH_STORAGE_DIR=str(root / "store"),
        **{f"UPLOAD_AUTH_{name.upper()}": value for name, value in settings.items()},
    )
    if role == "serve":
        env["UPLOAD_AUTH_DEV_MODE"] = "true"
    with running([role], env=env, log=root / "server.log") as server:
        yield server


@contextmanager
def running_argv(
    argv: list[str],
    *,
    port: int,
    env: Mapping[str, str],
    log: Path,
    ready: str = "/healthz",
    timeout: float = 20.0,
    cwd: Path | None = None,
    ready_status: int = 200,
) -> Iterator[Server]:
    """Start any server command that listens on ``port``; wait until ``ready`` answers
    ``ready_status``."""
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, env=dict(env), stdout=out, stderr=subprocess.STDOUT, cwd=cwd
        )
    server = Server(url, process, log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}:\n{server.output()}")
            try:
                if httpx.get(url + ready, timeout=1).status_code == ready_status:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready after {timeout}s:\n{server.output()}")
            time.sleep(0.05)
        yield server
    finally:
        stop_process(process)


def unavailable(reason: str) -> NoReturn:
    """Something a test needs cannot be had here: in CI that fails the test (one sentence),
    elsewhere it skips."""
    import pytest

    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def require_program(name: str) -> str:
    """The path of a system program the test needs; in CI its absence fails, never skips."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed (./scripts/setup --test installs it)")
    return path


def wait_until_ok(url: str, *, timeout: float = 60.0, why: Callable[[], str] = str) -> float:
    """Poll ``url`` until it answers 200; the seconds it took. AssertionError after
    ``timeout``, with ``why()`` (a log, say) in the message."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} never answered 200 in {timeout:.0f} s\n{why()}")


def container_images() -> dict[str, str]:
    """The images scripts/containers builds (or finds cached), by the names the compose file
    reads: PYTHON_IMAGE, UV_IMAGE, REDIS_IMAGE, UPLOAD_AUTH_IMAGE (every role) and
    UPLOAD_AUTH_SERVICE_IMAGE (the credential service alone). Root only, as CI."""
    if os.geteuid() != 0:
        unavailable("the container tests run podman as root, as CI does")
    built = subprocess.run(
        [str(ROOT / "scripts" / "containers"), "--env"], capture_output=True, text=True
    )
    if built.returncode != 0:
        last = (built.stderr.strip().splitlines() or ["no output"])[-1]
        unavailable(f"scripts/containers could not build the images: {last}")
    return dict(item.split("=", 1) for item in built.stdout.split())


class Redis:
    """A throwaway redis-server on a fixed loopback port, which a test may kill and restart.

    ``persistence`` is how compose and Kubernetes run it (AOF, fsync every second); without
    it, Redis runs as it did before they did (``--save "" --appendonly no``): a restart loses
    every key.
    """

    def __init__(
        self, workdir: Path, *, persistence: bool = False, maxmemory: str | None = None
    ) -> None:
        self.binary = require_program("redis-server")
        #: ``--maxmemory`` (with ``noeviction``, as compose and Kubernetes run it), if any.
        self.maxmemory = maxmemory
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.persistence = persistence
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = workdir / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        durable = ["--appendonly", "yes", "--appendfsync", "everysec"]
        volatile = ["--appendonly", "no"]
        argv = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--save",
            "",
            *(durable if self.persistence else volatile),
            "--protected-mode",
            "yes",
        ]
        if self.maxmemory is not None:
            argv += ["--maxmemory", self.maxmemory, "--maxmemory-policy", "noeviction"]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start:\n{self.log.read_text()}")
            time.sleep(0.02)

    def _answers(self) -> bool:
        return redis_answers(self.port)

    def kill(self) -> None:
        """SIGKILL, as a crashed or evicted Redis goes: no chance to save anything."""
        if self.process is not None:
            kill_process(self.process)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


@contextmanager
def redis_server(log: Path, *, persistence: bool = False) -> Iterator[str]:
    """A throwaway redis-server on a free loopback port; yields its URL."""
    redis = Redis(log.parent / (log.stem + "-data"), persistence=persistence)
    redis.log = log
    redis.start()
    try:
        yield redis.url
    finally:
        redis.stop()


_NGINX: Final = """
worker_processes 1;
{user}
error_log {root}/nginx-error.log warn;
pid {root}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {root}/nginx-body;
  proxy_temp_path {root}/nginx-proxy;
  fastcgi_temp_path {root}/nginx-fastcgi;
  uwsgi_temp_path {root}/nginx-uwsgi;
  scgi_temp_path {root}/nginx-scgi;
  client_max_body_size 30m;
{upstreams}
{servers}
}}
"""


def upstream(name: str, servers: list[str]) -> str:
    """An nginx upstream over ``host:port`` addresses, keeping connections alive for less
    than the servers do (uvicorn closes an idle one after 5 s): else nginx may send a request
    on a connection the server is closing, read "upstream prematurely closed", and count the
    replica failed (a POST is not tried on another)."""
    listed = " ".join(f"server {address} max_fails=1 fail_timeout=30s;" for address in servers)
    return f"  upstream {name} {{ {listed} keepalive 32; keepalive_timeout 4s; }}"


def proxy(port: int, routes: dict[str, str]) -> str:
    """An nginx server on 127.0.0.1:``port`` sending each path prefix to an upstream."""
    locations = "".join(
        f"    location {prefix} {{ proxy_pass http://{name}; proxy_http_version 1.1; "
        'proxy_set_header Connection ""; }\n'
        for prefix, name in routes.items()
    )
    return f"  server {{\n    listen 127.0.0.1:{port};\n{locations}  }}"


@contextmanager
def nginx(root: Path, upstreams: list[str], servers: list[str]) -> Iterator[None]:
    """Debian's nginx in the foreground, with everything under ``root``; stopped on exit."""
    binary = require_program("nginx")
    (root / "nginx.conf").write_text(
        _NGINX.format(
            root=root,
            user="user root root;" if os.geteuid() == 0 else "",
            upstreams="\n".join(upstreams),
            servers="\n".join(servers),
        )
    )
    process = subprocess.Popen(
        [binary, "-p", str(root), "-c", str(root / "nginx.conf"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.2)
        if process.poll() is not None:
            raise RuntimeError((root / "nginx-error.log").read_text())
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


def peak_rss_kib(pid: int) -> int:
    """The process's peak resident set size so far (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


class Forwarder:
    """A TCP forwarder on a free loopback port to ``target`` (host, port), which a test can cut
    (connections refused, those open reset: the far side unreachable) or slow down (each chunk
    held ``delay`` seconds), and restore."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.delay = 0.0
        self.cut = False
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:  # closed
                return
            if self.cut:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                if self.delay:
                    time.sleep(self.delay)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
                with self._lock:
                    self._open.discard(sock)

    def unreachable(self) -> None:
        """Refuse new connections and reset the open ones."""
        self.cut = True
        with self._lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        self.cut, self.delay = False, 0.0

    def close(self) -> None:
        self.unreachable()
        self._server.close()
