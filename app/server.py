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
