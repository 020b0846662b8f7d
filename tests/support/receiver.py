"""A webhook receiver on loopback, as an app's back end runs one: records every delivery (raw
body and headers), and can fail, be slow, or not be there yet."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.servers import serving


@dataclass
class Delivery:
    body: bytes
    headers: dict[str, str]


@dataclass
class Receiver:
    url: str
    deliveries: list[Delivery] = field(default_factory=list)
    #: Answer 500 to this many deliveries first.
    failures: int = 0
    #: Sleep this long before answering the first ``slow_times`` deliveries.
    slow_seconds: float = 0.0
    slow_times: int = 0
    answered: int = 0

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Delivery]:
        """The first ``count`` successful deliveries (those answered 2xx)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = [d for d in self.deliveries if d.headers.get("x-test-answer") == "200"]
            if len(done) >= count:
                return done
            time.sleep(0.05)
        raise AssertionError(f"{len(self.deliveries)} deliveries, wanted {count} successful")


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            receiver.answered += 1
            if receiver.slow_times > 0:
                receiver.slow_times -= 1
                time.sleep(receiver.slow_seconds)
            status = 200
            if receiver.failures > 0:
                receiver.failures -= 1
                status = 500
            headers["x-test-answer"] = str(status)
            receiver.deliveries.append(Delivery(body, headers))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


@contextmanager
def receiving(port: int = 0, receiver: Receiver | None = None) -> Iterator[Receiver]:
    """A receiver on 127.0.0.1:``port`` (0: a free one)."""
    server = ThreadingHTTPServer(("127.0.0.1", port), BaseHTTPRequestHandler)
    receiver = receiver or Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook")
    server.RequestHandlerClass = _handler(receiver)
    with serving(server):
        yield receiver
