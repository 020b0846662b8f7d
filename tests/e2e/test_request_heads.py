"""The request head is bounded by the server itself, for every role: a header too large or too
many headers get 431 and a closed connection, before the head is buffered, and the process
does not grow for it."""

import http.client
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import Server, peak_rss_kib, running_role

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024


@pytest.fixture(scope="module", params=["serve", "upload-api", "dev"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    with running_role(
        request.param, tmp_path_factory.mktemp("heads"), callers='{"api_keys": []}'
    ) as started:
        yield started


def exchange(server: Server, head: bytes, *, chunk: int = 64 * 1024) -> bytes:
    """Send ``head`` (as a client would: in pieces, stopping if the server closes) and read
    the answer."""
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            for start in range(0, len(head), chunk):
                sock.sendall(head[start : start + chunk])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the head was all sent
        answer = b""
        try:
            while part := sock.recv(65536):
                answer += part
        except ConnectionResetError:
            pass
        return answer


def test_a_huge_header_is_431_with_flat_memory(server: Server) -> None:
    """One 32 MiB header: 431 and the connection closed; the process grows by far less than
    the header (it would buffer it whole without the bound)."""
    before = peak_rss_kib(server.process.pid)
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (32 * MIB) + b"\r\n\r\n"
    answer = exchange(server, head)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert peak_rss_kib(server.process.pid) - before < 8 * 1024


def test_too_many_headers_is_431(server: Server) -> None:
    """101 small header fields: 431."""
    fields = b"".join(b"X-H%d: 1\r\n" % i for i in range(101))
    answer = exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]


def test_ordinary_heads_and_keep_alive_still_work(server: Server) -> None:
    """Two requests on one connection, with a 16 KiB cookie and 60 fields each: both 200."""
    port = int(server.url.rsplit(":", 1)[1])
    headers = {"Cookie": "c" * 16384, **{f"X-H{i}": "1" for i in range(60)}}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        statuses = []
        for _ in range(2):
            connection.request("GET", "/healthz", headers=headers)
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
        assert connection.sock is not None  # the same connection served both
    finally:
        connection.close()
    assert statuses == [200, 200]


def test_the_limits_are_settings(tmp_path: Path) -> None:
    """UPLOAD_AUTH_MAX_HEADER_BYTES lowers the bound: an 8 KiB header is then refused."""
    with running_role("upload-api", tmp_path, max_header_bytes="4096") as server:
        answer = exchange(server, b"GET /healthz HTTP/1.1\r\nX-A: " + b"a" * 8192 + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ")
