"""The HTTP server's protocol: uvicorn's httptools protocol with a bounded request head.

httptools (llhttp) sets no limit on a request's head: one 32 MiB header is buffered whole and
answered like any other request, growing the process by tens of megabytes for that one request.
Proxies bound heads (nginx: 8 KiB a line; Node: 16 KiB in all), but a service must not depend on
one being in front. This protocol counts the bytes of each request head as they arrive and the
number of its header fields, and answers ``431 Request Header Fields Too Large`` (and closes the
connection) as soon as either is over its limit, before the rest is buffered. It also joins the
small writes of one event-loop turn (``JoinedWrites``): a response's head and body go out in one
system call rather than two (measured in docs/performance.md). Everything else is uvicorn's own.
"""

import asyncio
from typing import Any, Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: Defaults: a head of 32 KiB holds any real browser's or SDK's request several times over.
MAX_HEAD_BYTES: Final = 32 * 1024
MAX_HEADERS: Final = 100

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


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing request heads over the class's limits.

    Cheap on the usual request: the bytes received while a head is incomplete (no request
    being read: uvicorn's ``cycle`` is absent or its body complete) are counted per read, and
    only a head that may be over the limit (more bytes than the limit arrived before it was
    complete) is measured field by field.
    """

    max_head_bytes = MAX_HEAD_BYTES
    max_headers = MAX_HEADERS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0  # received while in a head
        self._too_large = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(JoinedWrites(transport, self.loop))  # type: ignore[arg-type]

    def _in_head(self) -> bool:
        cycle = self.cycle
        return cycle is None or not cycle.more_body

    def data_received(self, data: bytes) -> None:
        if self._too_large:
            return
        cycle = self.cycle
        if cycle is None or not cycle.more_body:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._head_bytes > self.max_head_bytes and self._in_head() and not self._too_large:
            self._refuse()  # a head still arriving, already over the limit: not buffered on

    def on_headers_complete(self) -> None:
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


def bounded_protocol(max_head_bytes: int, max_headers: int) -> type[BoundedHttpToolsProtocol]:
    """The protocol class with these limits (uvicorn instantiates it per connection)."""
    return type(
        "BoundedHttpToolsProtocol",
        (BoundedHttpToolsProtocol,),
        {"max_head_bytes": max_head_bytes, "max_headers": max_headers},
    )
