"""Reading an upload's multipart body as it streams in, with hard limits.

The ``file`` part goes straight to a temporary file on the storage volume (so the final rename is
atomic), never into memory; the moment it passes the size cap the upload is refused and the
temporary file removed, without reading the rest of the body. The cap is decided from the file's
first bytes: video signatures get the video limit, everything else the general one. ``file`` may
also arrive as a text field holding base64 (plain or a data URI), decoded as it streams, or as
bytes in a part without a filename (the first bytes tell which), or as a URL (kept, and fetched
by ``app.upload_api.fetch`` once the upload is authenticated). Every other part is a small text
field, each and all together bounded.
"""

import base64
import binascii
import contextlib
import os
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Final

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import (
    DEFAULT_MAX_HEADER_COUNT,
    DEFAULT_MAX_HEADER_SIZE,
    TOKEN_CHARS,
    MultipartParser,
    parse_options_header,
)

from app.upload_api import messages
from app.upload_api.detect import HEAD_BYTES
from app.upload_api.storage.spool import write_all

MAX_FIELD_BYTES: Final = 64 * 1024
MAX_FIELDS_BYTES: Final = 256 * 1024
MAX_FIELDS: Final = 64
#: Longest URL accepted as ``file``.
MAX_URL_BYTES: Final = 8192
#: Multipart framing and text fields on top of the file itself, for the Content-Length check.
ENVELOPE_BYTES: Final = MAX_FIELDS_BYTES + 64 * 1024

#: Where a file part goes: a new empty file open for writing (``LocalStorage.new_temp``).
NewTemp = Callable[[], tuple[int, Path]]


@dataclass
class UploadedFile:
    """The file part, on disk in the storage's temporary area."""

    path: Path
    size: int = 0
    head: bytes = b""
    #: The file is at this URL (``file`` was a URL): fetched once the upload is authenticated.
    url: str | None = None


@dataclass
class UploadForm:
    fields: dict[str, str] = field(default_factory=dict)
    file: UploadedFile | None = None


class _Base64Stream:
    """Decodes base64 text arriving in arbitrary chunks (whitespace ignored; a ``data:`` URI
    prefix skipped). A URL instead of data is kept as ``url`` (at most ``MAX_URL_BYTES``), to be
    fetched once the upload is authenticated."""

    _PREFIXES: Final = (b"data:", b"http://", b"https://")

    def __init__(self) -> None:
        self.carry = b""
        self.started = False
        self.url: bytearray | None = None

    def feed(self, text: bytes) -> bytes:
        if self.url is not None:
            self.url += b"".join(text.split())
            if len(self.url) > MAX_URL_BYTES:
                raise messages.invalid_parameter("file")
            return b""
        data = self.carry + b"".join(text.split())
        if not self.started:
            if any(p.startswith(data) for p in self._PREFIXES) and len(data) < 8:
                self.carry = data
                return b""
            if data.startswith((b"http://", b"https://")):
                self.url, self.carry = bytearray(), b""
                return self.feed(data)
            if data.startswith(b"data:"):
                comma = data.find(b",")
                if comma < 0:
                    if len(data) > 256:
                        raise messages.invalid_parameter("file")
                    self.carry = data
                    return b""
                data = data[comma + 1 :]
            self.started = True
        usable = len(data) - len(data) % 4
        self.carry = data[usable:]
        try:
            return binascii.a2b_base64(data[:usable], strict_mode=True)
        except binascii.Error:
            raise messages.invalid_parameter("file") from None

    def finish(self) -> bytes:
        if self.url is not None or not self.carry:
            return b""
        try:
            return base64.b64decode(self.carry + b"=" * (-len(self.carry) % 4), validate=True)
        except binascii.Error:
            raise messages.invalid_parameter("file") from None


#: How many bytes of a part without a filename decide whether it is text or the file itself.
_SNIFF_BYTES: Final = 64
_BASE64_TEXT: Final = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\r\n\t "
)


def _looks_like_text(head: bytes) -> bool:
    """Base64 (or a ``data:`` URI, or a URL) rather than raw bytes."""
    if head.startswith((b"data:", b"http://", b"https://")):
        return True
    return bool(head) and all(byte in _BASE64_TEXT for byte in head)


class FileSink:
    """The file part on its way to disk: holds back the first bytes until the cap is known.
    A file system that refuses (full, read-only, gone) is the server's trouble: ImageKit's
    503, never a 500 (``messages.storage_failed``)."""

    def __init__(self, new_temp: NewTemp, cap_for_head: Callable[[bytes], int], text: bool) -> None:
        try:
            fd, path = new_temp()
        except OSError:
            raise messages.storage_failed() from None
        #: Written directly: chunks arrive large enough, and a file object's set-up (its
        #: ``isatty``, ``fstat`` and ``lseek``) would cost more system calls than the upload.
        self.fd = fd
        self.file = UploadedFile(path)
        self.cap_for_head = cap_for_head
        self.cap: int | None = None
        self.pending = bytearray()
        self.decoder: _Base64Stream | None = None
        #: A part without a filename may still be the file's bytes (imagekitio 4.x sends them
        #: so): its first bytes decide (``_SNIFF_BYTES``), text only if they are base64, a
        #: ``data:`` URI or a URL.
        self.undecided: bytearray | None = bytearray() if text else None

    def write(self, chunk: bytes) -> None:
        if self.undecided is not None:
            self.undecided += chunk
            if len(self.undecided) < _SNIFF_BYTES:
                return
            chunk = self._decide_kind()
        if self.decoder is not None:
            chunk = self.decoder.feed(chunk)
        self._write(chunk)

    def _decide_kind(self) -> bytes:
        """Whether the part without a filename is text (base64, data URI, URL) or bytes;
        returns what was held back."""
        held = bytes(self.undecided or b"")
        self.undecided = None
        if _looks_like_text(held[:_SNIFF_BYTES]):
            self.decoder = _Base64Stream()
        return held

    def _write(self, chunk: bytes) -> None:
        self.file.size += len(chunk)
        if self.cap is None:
            self.pending += chunk
            self._decide(final=False)
        elif self.file.size > self.cap:
            raise messages.file_too_large()
        else:
            self._to_disk(chunk)

    def _to_disk(self, data: bytes | bytearray) -> None:
        try:
            write_all(self.fd, data)
        except OSError:
            raise messages.storage_failed() from None

    def _decide(self, *, final: bool) -> None:
        """Once the first bytes are known, decide the cap and write what was held back."""
        if self.cap is not None or (len(self.pending) < HEAD_BYTES and not final):
            return
        self.file.head = bytes(self.pending[:HEAD_BYTES])
        self.cap = self.cap_for_head(self.file.head)
        if self.file.size > self.cap:
            raise messages.file_too_large()
        self._to_disk(self.pending)
        self.pending.clear()

    def finish(self) -> UploadedFile:
        if self.undecided is not None:  # a part shorter than the sniff: decide on what came
            chunk = self._decide_kind()
            if self.decoder is not None:
                chunk = self.decoder.feed(chunk)
            self._write(chunk)
        if self.decoder is not None:
            self._write(self.decoder.finish())
            if self.decoder.url is not None:
                try:
                    self.file.url = self.decoder.url.decode("ascii")
                except UnicodeDecodeError:
                    raise messages.invalid_parameter("file") from None
        self._decide(final=True)
        try:
            self._close()
        except OSError:  # a network file system reports a failed write at close
            raise messages.storage_failed() from None
        return self.file

    def _close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self._close()
        with contextlib.suppress(FileNotFoundError):
            self.file.path.unlink()


class _FormReader:
    def __init__(self, new_temp: NewTemp, cap_for_head: Callable[[bytes], int]) -> None:
        self.new_temp = new_temp
        self.cap_for_head = cap_for_head
        self.form = UploadForm()
        self.header_field = b""
        self.header_value = b""
        self.headers: dict[bytes, bytes] = {}
        self.name: str | None = None
        self.buffer = bytearray()
        self.fields_bytes = 0
        self.sink: FileSink | None = None
        self.in_file = False

    # -- python-multipart callbacks ---------------------------------------------------------
    def on_part_begin(self) -> None:
        self.headers = {}
        self.name = None
        self.buffer.clear()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self._header(self.header_field, self.header_value)
        self.header_field = self.header_value = b""

    def _header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_headers_finished(self) -> None:
        disposition, name, has_filename = _disposition(self.headers.get(b"content-disposition"))
        if disposition != b"form-data" or name is None:
            raise messages.malformed_body()
        self.name = name
        if self.name == "file":
            if self.sink is not None:
                raise messages.invalid_parameter("file")
            # Without a filename the part is text (base64, a data URI, a URL) or,
            # when its first bytes are not, the file's bytes.
            self.sink = FileSink(self.new_temp, self.cap_for_head, not has_filename)
            self.in_file = True
        elif self.name in self.form.fields:
            raise messages.invalid_parameter(self.name if self.name.isidentifier() else "form")
        elif len(self.form.fields) >= MAX_FIELDS:
            raise messages.malformed_body()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self.in_file and self.sink is not None:
            self.sink.write(chunk)
            return
        self.fields_bytes += len(chunk)
        if len(self.buffer) + len(chunk) > MAX_FIELD_BYTES or self.fields_bytes > MAX_FIELDS_BYTES:
            raise messages.invalid_parameter(self.name or "form")
        self.buffer += chunk

    def on_part_end(self) -> None:
        if self.in_file and self.sink is not None:
            self.form.file = self.sink.finish()
            self.in_file = False
        elif self.name is not None:
            try:
                self.form.fields[self.name] = self.buffer.decode("utf-8")
            except UnicodeDecodeError:
                raise messages.invalid_parameter(self.name) from None

    def discard(self) -> None:
        if self.sink is not None:
            self.sink.discard()

    def take_parts(self, body: bytes, parts: "list[_Part]") -> None:
        """The parts of a form found whole in ``body`` (``whole_form``), through the same
        callbacks, in the order python-multipart makes them."""
        for headers, start, end in parts:
            self.on_part_begin()
            for name, value in headers:
                self._header(name, value)
            self.on_headers_finished()
            if end > start:
                self.on_part_data(body, start, end)
            self.on_part_end()


#: A part of a form found whole: its header lines (name, value) and where its data lies.
_Part = tuple[list[tuple[bytes, bytes]], int, int]


def whole_form(body: bytes, boundary: bytes) -> list[_Part] | None:
    """The parts of ``body`` when it holds a whole form in the usual shape, found with a few
    ``bytes.find`` calls; None for anything else, which python-multipart's state machine then
    reads byte by byte (docs/performance.md, #34). The usual shape: the first boundary line
    at the start, every part with one to eight header lines ``name: value`` (a token name,
    no CR in the value, within python-multipart's header limits), each part's data ended by
    CRLF, ``--``, the boundary and CRLF or the closing ``--``. What such a body makes is what
    python-multipart makes of it (held to it in tests/upload_api/test_form.py); what follows
    the closing boundary is ignored by both."""
    opening = b"--" + boundary
    if not body.startswith(opening + b"\r\n"):
        return None
    delimiter = b"\r\n" + opening
    parts: list[_Part] = []
    start = len(opening) + 2
    while True:
        headers_end = body.find(b"\r\n\r\n", start)
        if headers_end < 0:
            return None
        lines = body[start:headers_end].split(b"\r\n")
        if len(lines) > DEFAULT_MAX_HEADER_COUNT:
            return None
        headers = []
        for line in lines:
            name, colon, value = line.partition(b":")
            if (
                not (name and colon)
                or len(line) > DEFAULT_MAX_HEADER_SIZE
                or name.translate(None, TOKEN_CHARS)
            ):
                return None
            value = value.lstrip(b" ")
            if b"\r" in value:
                return None
            headers.append((name, value))
        data_start = headers_end + 4
        data_end = body.find(delimiter, data_start)
        if data_end < 0:
            return None
        parts.append((headers, data_start, data_end))
        after = data_end + len(delimiter)
        following = body[after : after + 2]
        if following == b"--":
            return parts
        if following != b"\r\n":
            return None
        start = after + 2


@lru_cache(maxsize=256)
def _disposition(header: bytes | None) -> tuple[bytes, str | None, bool]:
    """A part's Content-Disposition: its type, its ``name`` and whether it has a ``filename``.
    Kept for the headers seen most: every client names its fields the same way."""
    disposition, options = parse_options_header(header)
    name = options.get(b"name")
    filename = b"filename" in options
    return disposition, None if name is None else name.decode("utf-8", "replace"), filename


#: The Content-Type header every client sends (a boundary of RFC 2046's characters but the
#: space), read without python-multipart's general parser; held to it in the tests.
_USUAL_CONTENT_TYPE: Final = re.compile(r"multipart/form-data; boundary=([0-9A-Za-z'()+_,./:=?-]+)")


def boundary_of(content_type: str | None) -> bytes:
    """The multipart boundary, or ImageKit-style 400 for anything but multipart/form-data."""
    usual = _USUAL_CONTENT_TYPE.fullmatch(content_type) if content_type else None
    if usual is not None:
        return usual[1].encode()
    media, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if media != b"multipart/form-data" or not boundary:
        raise messages.malformed_body()
    return boundary


async def read_form(
    chunks: AsyncIterator[bytes],
    *,
    boundary: bytes,
    new_temp: NewTemp,
    cap_for_head: Callable[[bytes], int],
) -> UploadForm:
    """Parse the body, the file part into a file from ``new_temp``; the caller must remove
    ``form.file.path`` when done with it."""
    reader = _FormReader(new_temp, cap_for_head)
    parser: MultipartParser | None = None
    whole = False  # the first chunk held the whole form: the rest is its epilogue
    try:
        async for chunk in chunks:
            if whole:
                continue
            if parser is None:
                parts = whole_form(chunk, boundary)
                if parts is not None:
                    reader.take_parts(chunk, parts)
                    whole = True
                    continue
                parser = _parser(boundary, reader)
            parser.write(chunk)
        if parser is not None:
            parser.finalize()
        if reader.in_file:  # the body ended inside the file part
            raise messages.malformed_body()
    except MultipartParseError:
        reader.discard()
        raise messages.malformed_body() from None
    except BaseException:
        reader.discard()
        raise
    return reader.form


def _parser(boundary: bytes, reader: _FormReader) -> MultipartParser:
    return MultipartParser(
        boundary,
        {
            "on_part_begin": reader.on_part_begin,
            "on_part_data": reader.on_part_data,
            "on_part_end": reader.on_part_end,
            "on_header_field": reader.on_header_field,
            "on_header_value": reader.on_header_value,
            "on_header_end": reader.on_header_end,
            "on_headers_finished": reader.on_headers_finished,
        },
    )
