"""An image's width and height from its header, in the upload's own process: what every upload
answer needs (ImageKit's ``width`` and ``height``), without the media workers' process hop.

Safe to run on untrusted bytes in the service's process: it reads at most ``WINDOW`` bytes of
the file, once, and then only unpacks fixed-size integers at offsets inside them. Its one loop
(JPEG's segments before the frame header) moves forward at every step and stops after
``MAX_SEGMENTS``, so its cost is bounded whatever the file holds: no decompression, no
allocation beyond the window, no library's parser. Anything it cannot tell (another format, a
header past the window, a malformed one) gives None, and the media workers read the file as
before, in their bounded processes.

Why not ``imagesize`` (the library that does this, and that the tests check these answers
against): its JPEG reader looks for the next marker one ``read(1)`` at a time, so a hostile
file of 256 KB without markers costs milliseconds of the event loop where this costs
microseconds (docs/performance.md).
"""

import os
import struct
from functools import lru_cache
from pathlib import Path
from typing import Final

from app.core.imagekit.filetypes import FileType, Kind
from app.upload_api.media import MAX_DECODED_PIXELS, Probe

#: The most of a file read: real JPEGs reach their frame header within their metadata
#: segments (EXIF and XMP are at most 64 KB each, ICC profiles a few of them).
WINDOW: Final = 256 * 1024
#: Real JPEGs have a few dozen segments before the frame header.
MAX_SEGMENTS: Final = 128
#: The canonical extensions read here; every other image goes to the media workers.
FORMATS: Final = frozenset({"jpg", "png", "gif", "webp", "bmp"})

#: Kinds whose files the media workers read; any other file never reaches a worker.
PROBED_KINDS: Final = frozenset({Kind.IMAGE, Kind.VIDEO, Kind.AUDIO})

#: JPEG start-of-frame markers (C0-CF except DHT C4, JPG C8 and DAC CC).
_SOF: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: JPEG markers that stand alone, without a length (TEM, RST0-7).
_STANDALONE: Final = frozenset({0x01, *range(0xD0, 0xD8)})


def in_process(file: Path | int, file_type: FileType, head: bytes = b"") -> Probe | None:
    """What an answer that does not ask for metadata says of the file, when it can be told
    here, without the media workers: nothing for kinds they never read (documents, fonts...),
    a web image's size from its header; None when only the workers can tell (other images,
    video, audio, a header past the window)."""
    if file_type.kind not in PROBED_KINDS:
        return {}
    size = size_of(file, file_type.extension, head)
    if size is None:
        return None
    width, height = size
    # Every format read here is one Pillow decodes (thumbnails).
    return {"width": width, "height": height, "thumbnail": width * height <= MAX_DECODED_PIXELS}


def size_of(file: Path | int, extension: str, head: bytes = b"") -> tuple[int, int] | None:
    """The width and height the header of ``file`` (its path, or a descriptor open on it)
    states, for a file detected as ``extension`` (one of ``FORMATS``); None when it cannot be
    told from the header. ``head``, the file's first bytes when the caller has them, spares
    reading the file when the header is within them (always but for a JPEG with large
    metadata)."""
    if extension not in FORMATS:
        return None
    found = _size_in_head(head, extension) if head else None
    if found is not None:
        return found
    wanted = WINDOW if extension == "jpg" else 32
    try:
        if isinstance(file, int):
            data = os.pread(file, wanted, 0)
        else:
            fd = os.open(file, os.O_RDONLY | os.O_CLOEXEC)
            try:
                data = os.read(fd, wanted)
            finally:
                os.close(fd)
    except OSError:
        return None
    return size_in(data, extension)


@lru_cache(maxsize=32)
def _size_in_head(head: bytes, extension: str) -> tuple[int, int] | None:
    """``size_in`` of a file's first bytes, kept for the last few: an upload's answer and its
    storage's implied-record check read the same head (a few kilobytes, hashed once)."""
    return size_in(head, extension)


def size_in(data: bytes, extension: str) -> tuple[int, int] | None:
    """The width and height stated by a file's first bytes (``size_of``)."""
    try:
        if extension == "jpg":
            found = _jpeg(data)
        elif extension == "png":
            found = _png(data)
        elif extension == "gif":
            found = struct.unpack_from("<HH", data, 6) if data[:4] == b"GIF8" else None
        elif extension == "webp":
            found = _webp(data)
        elif extension == "bmp":
            found = _bmp(data)
        else:
            return None
    except (struct.error, IndexError):  # shorter than its header
        return None
    if found is None or found[0] <= 0 or found[1] <= 0:
        return None
    return found


def _jpeg(data: bytes) -> tuple[int, int] | None:
    if data[:2] != b"\xff\xd8":
        return None
    at = 2
    for _ in range(MAX_SEGMENTS):
        if data[at] != 0xFF:  # a marker is due here: a malformed file
            return None
        while data[at] == 0xFF:  # fill bytes
            at += 1
        marker = data[at]
        at += 1
        if marker in _STANDALONE:
            continue
        if marker in (0xD9, 0xDA):  # the image ends, or its data starts: no frame header
            return None
        (length,) = struct.unpack_from(">H", data, at)
        if length < 2:
            return None
        if marker in _SOF:
            height, width = struct.unpack_from(">HH", data, at + 3)
            return width, height
        at += length
    return None


def _png(data: bytes) -> tuple[int, int] | None:
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack_from(">II", data, 16)
    return width, height


def _webp(data: bytes) -> tuple[int, int] | None:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and data[20] == 0x2F:
        (bits,) = struct.unpack_from("<I", data, 21)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return (width, height) if len(data) >= 30 else None
    return None


def _bmp(data: bytes) -> tuple[int, int] | None:
    if data[:2] != b"BM":
        return None
    (header,) = struct.unpack_from("<I", data, 14)
    if header == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        width, height = struct.unpack_from("<HH", data, 18)
        return width, height
    width, height = struct.unpack_from("<ii", data, 18)
    return width, abs(height)  # negative: stored top-down
