"""An image's size from its header, in the upload's process (``dimensions``): the same as
Pillow decodes and imagesize (the library it stands in for) reads, for every format and shape
it handles; nothing for what it cannot tell; and bounded on hostile bytes, where imagesize
reads a byte at a time."""

import io
import os
import struct
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import imagesize
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from app.upload_api import dimensions
from tests.support import media_files

FORMATS = {"jpg": "JPEG", "png": "PNG", "gif": "GIF", "webp": "WEBP", "bmp": "BMP"}


def encoded(extension: str, width: int, height: int, **options: Any) -> bytes:
    out = io.BytesIO()
    mode = "RGBA" if extension in ("png", "webp") else "RGB"
    Image.new(mode, (width, height), (200, 10, 10)).save(out, FORMATS[extension], **options)
    return out.getvalue()


CASES = [
    ("jpg", {}),
    ("jpg", {"progressive": True}),
    ("jpg", {"exif": Image.Exif(), "icc_profile": b"\0" * 70_000}),  # a frame header past 64 KB
    ("png", {}),
    ("gif", {}),
    ("bmp", {}),
    ("webp", {"lossless": True}),  # VP8L
    ("webp", {"quality": 80}),  # VP8
    ("webp", {"quality": 80, "exif": b"Exif\0\0"}),  # VP8X
]


@pytest.mark.parametrize(("extension", "options"), CASES)
@pytest.mark.parametrize("size", [(1, 1), (37, 2), (640, 480), (3001, 17)])
def test_the_size_pillow_and_imagesize_read(
    tmp_path: Path, extension: str, options: dict[str, Any], size: tuple[int, int]
) -> None:
    data = encoded(extension, *size, **options)
    path = tmp_path / f"a.{extension}"
    path.write_bytes(data)
    with Image.open(path) as image:
        assert image.size == size
    assert imagesize.get(str(path), exif_rotation=False) == size
    assert dimensions.size_of(path, extension) == size
    assert dimensions.size_of(path, extension, data[:4096]) == size


def test_a_camera_jpeg_and_a_photo(tmp_path: Path) -> None:
    for name, data in (
        ("camera", media_files.camera_jpeg(320, 240)),
        ("photo", media_files.photo(60_000)),
    ):
        path = tmp_path / f"{name}.jpg"
        path.write_bytes(data)
        assert dimensions.size_of(path, "jpg") == imagesize.get(str(path), exif_rotation=False)


def test_other_formats_and_broken_headers_are_not_told(tmp_path: Path) -> None:
    """None, so the media workers read the file: other formats, a truncated header, a JPEG
    whose segments break off, zero sizes."""
    path = tmp_path / "x"
    for extension, data in [
        ("tiff", encoded("png", 4, 4)),
        ("png", encoded("png", 4, 4)[:20]),
        ("png", b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + struct.pack(">II", 0, 5)),
        ("jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF" + b"\0" * 100),
        ("jpg", b"\xff\xd8\xff\xe0\x00\x01"),
        ("gif", b"GIF89a\0\0\x05\0"),
        ("webp", b"RIFF\0\0\0\0WEBPVP8 " + b"\0" * 20),
        ("bmp", b"BM" + b"\0" * 10),
    ]:
        path.write_bytes(data)
        assert dimensions.size_of(path, extension) is None, (extension, data)


def test_hostile_jpegs_are_read_within_bounds(tmp_path: Path) -> None:
    """A JPEG of 25 MB that never reaches a frame header, by garbage or by a hundred thousand
    empty segments: refused after reading one window of the file and walking at most
    ``MAX_SEGMENTS`` segments (counted in lines run, not timed), where imagesize's reader goes
    through it a byte at a time."""
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8\xff\xe0\x00\x10" + b"\0" * 14 + bytes(25 * 1024 * 1024))
    segments = tmp_path / "segments.jpg"
    segments.write_bytes(b"\xff\xd8" + b"\xff\xe1\x00\x02" * 100_000)
    reads: list[int] = []
    real_read = os.read

    def counted(fd: int, size: int) -> bytes:
        reads.append(size)
        return real_read(fd, size)

    for path in (garbage, segments):
        lines = 0

        def tracer(frame: FrameType, event: str, _: object) -> Any:
            nonlocal lines
            if frame.f_globals.get("__name__") == dimensions.__name__:
                lines += event == "line"
                return tracer
            return None

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(os, "read", counted)
            sys.settrace(tracer)
            try:
                assert dimensions.size_of(path, "jpg") is None
            finally:
                sys.settrace(None)
        assert lines < 20 * dimensions.MAX_SEGMENTS
    assert reads == [dimensions.WINDOW, dimensions.WINDOW]


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(sorted(FORMATS)), st.binary(max_size=300))
def test_any_bytes_give_a_size_or_none(extension: str, data: bytes) -> None:
    found = dimensions.size_in(data, extension)
    assert found is None or (found[0] > 0 and found[1] > 0)
