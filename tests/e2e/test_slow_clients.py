"""Slow clients are bounded, for every role: a request head that never completes is answered
408 and closed after ``head_timeout``; a body that stops arriving is cut off after
``body_timeout``; and with thousands of half-open heads held against a process capped at fewer
connections, ``/healthz`` keeps answering at once (slowloris)."""

import contextlib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.servers import Server, running_role

pytestmark = pytest.mark.e2e

HALF_OPEN = 2000
CAP = 500


@pytest.fixture(scope="module", params=["serve", "upload-api", "dev"])
def role(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def server(role: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_role(
        role,
        tmp_path_factory.mktemp("slow"),
        head_timeout="2",
        body_timeout="2",
        max_connections=str(CAP),
        access_log="false",
    ) as started:
        yield started


def port_of(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def read_all(sock: socket.socket, seconds: float) -> bytes:
    """What the server sends until it closes, or ``seconds`` pass."""
    sock.settimeout(seconds)
    answer = b""
    try:
        while part := sock.recv(65536):
            answer += part
    except (TimeoutError, ConnectionResetError):
        pass
    return answer


def test_a_head_that_never_completes_is_408_and_closed(server: Server) -> None:
    """Half a head, then nothing; and a connection that sends nothing at all: both are answered
    408 and closed within the head timeout (2 s here), not held forever."""
    port = port_of(server)
    with (
        socket.create_connection(("127.0.0.1", port)) as partial,
        socket.create_connection(("127.0.0.1", port)) as silent,
    ):
        partial.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        started = time.monotonic()
        answers = [read_all(partial, 6), read_all(silent, 6)]
        took = time.monotonic() - started
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), answers
    assert took < 5


def test_a_body_that_stops_arriving_is_cut_off(server: Server, role: str) -> None:
    """A POST whose body stops after 10 of its declared bytes, to a route that reads it: the
    connection is closed, unanswered, after the body timeout (2 s here), while a prompt request
    on another connection is answered meanwhile."""
    port = port_of(server)
    path = "/v2/token" if role == "serve" else "/api/v1/files/upload"
    with socket.create_connection(("127.0.0.1", port)) as stalled:
        stalled.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n0123456789".encode()
        )
        started = time.monotonic()
        assert httpx.get(server.url + "/healthz").status_code == 200
        answer = read_all(stalled, 8)
        took = time.monotonic() - started
    assert answer == b""
    assert 1.5 < took < 6


def test_healthz_answers_while_thousands_of_heads_are_held(server: Server) -> None:
    """Two thousand half-open heads against a process capped at five hundred connections:
    /healthz answers every time, promptly, and the slow heads are what gets closed."""
    port = port_of(server)
    held: list[socket.socket] = []
    latencies = []
    try:
        for n in range(HALF_OPEN):
            sock = socket.socket()
            sock.setblocking(True)
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            held.append(sock)
            if n % 200 == 199:
                started = time.monotonic()
                probe = httpx.get(server.url + "/healthz", timeout=5)
                latencies.append(time.monotonic() - started)
                assert probe.status_code == 200
        closed = 0
        for sock in held:
            sock.settimeout(0.001)
            with contextlib.suppress(TimeoutError):
                closed += sock.recv(64).startswith(b"HTTP/1.1 408 ")
    finally:
        for sock in held:
            sock.close()
    assert len(latencies) == HALF_OPEN // 200
    assert max(latencies) < 1.0, latencies
    assert closed >= HALF_OPEN - CAP  # the cap made room by closing slow heads
    assert "connection cap reached" in server.output()
