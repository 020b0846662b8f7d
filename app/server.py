"""The HTTP server's protocol: uvicorn's httptools protocol with a bounded request head.

httptools (llhttp) sets no limit on a request's head: one 32 MiB header is buffered whole and
answered like any other request, growing the process by tens of megabytes for that one request.
Proxies bound heads (nginx: 8 KiB a line; Node: 16 KiB in all), but a service must not depend on
one being in front. This protocol counts the bytes of each request head as they arrive and the
number of its header fields, and answers ``431 Request Header Fields Too Large`` (and closes the
connection) as soon as either is over its limit, before the rest is buffered. Everything else is
uvicorn's own.
"""

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


class _HeadTooLarge(Exception):
    """Raised from a parser callback: httptools stops parsing, uvicorn answers (as 431)."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing request heads over the class's limits."""

    max_head_bytes = MAX_HEAD_BYTES
    max_headers = MAX_HEADERS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # waiting for, or reading, a request's head
        self._head_bytes = 0  # received while in the head (a head still arriving)
        self._parsed = 0  # of the head parsed so far
        self._too_large = False

    def data_received(self, data: bytes) -> None:
        if self._too_large:
            return
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > self.max_head_bytes and not self._too_large:
            self._refuse()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._parsed = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) >= self.max_headers:
            self._too_large = True
            raise _HeadTooLarge
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        """Heads that arrive whole in one read are measured as they are parsed."""
        self._parsed += size
        if self._parsed > self.max_head_bytes:
            self._too_large = True
            raise _HeadTooLarge

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes = True, 0

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
