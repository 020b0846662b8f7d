"""The HTTP server's protocol: uvicorn's httptools protocol with bounded request heads, bounded
slowness and a bounded number of connections.

httptools (llhttp) sets no limit on a request's head: one 32 MiB header is buffered whole and
answered like any other request, growing the process by tens of megabytes for that one request.
Proxies bound heads (nginx: 8 KiB a line; Node: 16 KiB in all), but a service must not depend on
one being in front. This protocol counts the bytes of each request head as they arrive and the
number of its header fields, and answers ``431 Request Header Fields Too Large`` (and closes the
connection) as soon as either is over its limit, before the rest is buffered. It also joins the
small writes of one event-loop turn (``JoinedWrites``): a response's head and body go out in one
system call rather than two (measured in docs/performance.md).

Slow clients are bounded too (slowloris): uvicorn times out neither a connection that never
finishes its request head nor a body that stops arriving. Here a head must be complete within
``head_timeout`` seconds of its first byte (or of the connection, for a first request), else
``408 Request Timeout`` and the connection closes; a body that goes ``body_timeout`` seconds
without a byte (while the server is reading it) is cut off. And a process holds at most
``max_connections``: one more makes room by closing the connection whose head has been
incomplete the longest, or, with none, is refused with 503 and closed, so the probes and real
requests (which send their head at once) keep being answered however many slow heads are held.
The timers cost nothing on the usual request, whose head (and small body) arrive in one read.
Everything else is uvicorn's own.
"""

import asyncio
import time
from typing import Any, Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: Defaults: a head of 32 KiB holds any real browser's or SDK's request several times over.
MAX_HEAD_BYTES: Final = 32 * 1024
MAX_HEADERS: Final = 100
HEAD_TIMEOUT: Final = 10.0
BODY_TIMEOUT: Final = 60.0
MAX_CONNECTIONS: Final = 4096
#: The cap's log line at most this often (a flood would otherwise write one per connection).
_CAP_LOG_SECONDS: Final = 10.0


def _answer(status: bytes, message: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\n"
        b"content-type: text/plain; charset=utf-8\r\n"
        b"content-length: " + str(len(message)).encode() + b"\r\n"
        b"connection: close\r\n\r\n" + message
    )


_TIMED_OUT: Final = _answer(b"408 Request Timeout", b"The request took too long to arrive.\n")
_FULL: Final = _answer(b"503 Service Unavailable", b"Too many connections; retry shortly.\n")

_MESSAGE: Final = b"The request's header fields are too large.\n"
_REFUSAL: Final = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: " + str(len(_MESSAGE)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _MESSAGE
)


#: A write at least this large is not held back: joining it would copy it, for nothing.
_HOLD_BYTES: Final = 16 * 1024


class JoinedWrites:
    """A transport whose small writes of one event-loop turn go out as one.

    uvicorn writes a response's head and its body separately: two ``send`` system calls (and on
    loopback two TCP segments, each received in the sender's time) for the usual small answer.
    Here a small write is held until the next write of the same turn, which takes it along, or
    until the end of the turn (one ``call_soon`` per turn for every connection of the loop), so
    nothing waits longer than the turn that wrote it. ``close`` writes what is held first;
    everything else is the transport's own.
    """

    __slots__ = (
        "_held",
        "_loop",
        "_transport",
        "get_extra_info",
        "is_closing",
        "pause_reading",
        "resume_reading",
    )

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        # what uvicorn asks on every request, bound once (``__getattr__`` is the slow way)
        self.get_extra_info = transport.get_extra_info
        self.is_closing = transport.is_closing
        self.pause_reading = transport.pause_reading
        self.resume_reading = transport.resume_reading

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
        elif len(data) >= _HOLD_BYTES:
            self._transport.write(data)
        else:
            self._held = bytes(data)
            waiting = _WAITING.get(self._loop)
            if waiting is None:
                waiting = _WAITING[self._loop] = []
                self._loop.call_soon(_flush_turn, self._loop)
            waiting.append(self)

    def flush(self) -> None:
        """Write what is held, now."""
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        held = self._held
        return self._transport.get_write_buffer_size() + (len(held) if held else 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


#: Per event loop, the transports holding a write this turn (one loop per thread: never shared).
_WAITING: dict[asyncio.AbstractEventLoop, list[JoinedWrites]] = {}


def _flush_turn(loop: asyncio.AbstractEventLoop) -> None:
    for joined in _WAITING.pop(loop, ()):
        joined.flush()


class _HeadTooLarge(Exception):
    """Raised from a parser callback: httptools stops parsing, uvicorn answers (as 431)."""


#: Per event loop, the connections whose request head is incomplete, oldest first (the ones a
#: connection over the cap evicts).
_SLOW_HEADS: dict[asyncio.AbstractEventLoop, dict["BoundedHttpToolsProtocol", None]] = {}
_last_cap_log = 0.0


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing request heads over the class's limits, and
    closing connections too slow to send their head or body, or over the process's cap.

    Cheap on the usual request: the bytes received while a head is incomplete (no request
    being read: uvicorn's ``cycle`` is absent or its body complete) are counted per read, and
    only a head that may be over the limit (more bytes than the limit arrived before it was
    complete) is measured field by field. A timer is armed only for a head or a body still
    incomplete after a read.
    """

    max_head_bytes = MAX_HEAD_BYTES
    max_headers = MAX_HEADERS
    head_timeout = HEAD_TIMEOUT
    body_timeout = BODY_TIMEOUT
    max_connections = MAX_CONNECTIONS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0  # received while in a head
        self._too_large = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_seen = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(JoinedWrites(transport, self.loop))  # type: ignore[arg-type]
        self._await_head()
        if len(self.connections) > self.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_done()
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().connection_lost(exc)

    # -- slowness -----------------------------------------------------------------------------

    def _await_head(self) -> None:
        """The head of a request is due: within ``head_timeout``, and evictable meanwhile."""
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_too_slow)
            _SLOW_HEADS.setdefault(self.loop, {})[self] = None

    def _head_done(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
            slow = _SLOW_HEADS.get(self.loop)
            if slow is not None:
                slow.pop(self, None)

    def _head_too_slow(self) -> None:
        self._head_timer = None
        _SLOW_HEADS.get(self.loop, {}).pop(self, None)
        self._close_with(_TIMED_OUT)

    def _close_with(self, answer: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(answer)
            self.transport.close()

    def _await_body(self) -> None:
        """A body is arriving: each byte must come within ``body_timeout`` of the last, while
        the server reads (not while it has paused reading: that wait is the server's)."""
        self._body_seen = self.loop.time()
        if self._body_timer is None:
            self._body_timer = self.loop.call_later(self.body_timeout, self._check_body)

    def _check_body(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if cycle is None or not cycle.more_body or self.transport.is_closing():
            return
        idle = self.loop.time() - self._body_seen
        if self.flow.read_paused or idle < self.body_timeout:
            wait = self.body_timeout if self.flow.read_paused else self.body_timeout - idle
            self._body_timer = self.loop.call_later(wait, self._check_body)
            return
        self.logger.info("request body stalled: connection closed")
        self.transport.close()

    def _make_room(self) -> None:
        """Over the cap: close the connection whose head has been incomplete the longest (this
        one, if it is that), else refuse this one."""
        global _last_cap_log
        now = time.monotonic()
        if now - _last_cap_log > _CAP_LOG_SECONDS:
            _last_cap_log = now
            self.logger.warning(
                "connection cap reached (%d): closing the slowest incomplete request heads",
                self.max_connections,
            )
        slow = _SLOW_HEADS.get(self.loop, {})
        oldest = next(iter(slow), None)
        if oldest is None or (oldest is self and len(slow) == 1):
            self._head_done()
            self._close_with(_FULL)
            return
        oldest._head_done()
        oldest._close_with(_TIMED_OUT)

    def _in_head(self) -> bool:
        cycle = self.cycle
        return cycle is None or not cycle.more_body

    def data_received(self, data: bytes) -> None:
        if self._too_large:
            return
        before = self.cycle
        in_body = before is not None and before.more_body
        if not in_body:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._head_bytes > self.max_head_bytes and self._in_head() and not self._too_large:
            self._refuse()  # a head still arriving, already over the limit: not buffered on
            return
        after = self.cycle
        if after is before and not in_body:
            self._await_head()  # no head completed in this read: one is still arriving
        elif after is not None and after.more_body:
            self._await_body()  # a body still arriving

    def on_headers_complete(self) -> None:
        if self._head_timer is not None:
            self._head_done()
        head_bytes, self._head_bytes = self._head_bytes, 0
        if len(self.headers) > self.max_headers or (
            head_bytes > self.max_head_bytes and self._head_size() > self.max_head_bytes
        ):
            self._too_large = True
            raise _HeadTooLarge
        super().on_headers_complete()

    def _head_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def send_400_response(self, msg: str) -> None:
        if self._too_large:
            self._refuse()
        else:
            super().send_400_response(msg)

    def _refuse(self) -> None:
        self._too_large = True
        self.logger.info("request head over the limit: answered 431")
        if not self.transport.is_closing():
            self.transport.write(_REFUSAL)
            self.transport.close()


def bounded_protocol(
    max_head_bytes: int,
    max_headers: int,
    *,
    head_timeout: float = HEAD_TIMEOUT,
    body_timeout: float = BODY_TIMEOUT,
    max_connections: int = MAX_CONNECTIONS,
) -> type[BoundedHttpToolsProtocol]:
    """The protocol class with these limits (uvicorn instantiates it per connection)."""
    return type(
        "BoundedHttpToolsProtocol",
        (BoundedHttpToolsProtocol,),
        {
            "max_head_bytes": max_head_bytes,
            "max_headers": max_headers,
            "head_timeout": head_timeout,
            "body_timeout": body_timeout,
            "max_connections": max_connections,
        },
    )
