"""What a file really is: magic bytes for binary types, extension for text types."""

import pytest

from app.core.imagekit.filetypes import ALLOWED
from app.upload_api.detect import detect
from tests.support.samples import jpeg, png


@pytest.mark.parametrize(
    ("head", "name", "mime"),
    [
        (png(), "cat.png", "image/png"),
        (jpeg(), "cat.jpeg", "image/jpeg"),
        (b"GIF89a" + b"\x00" * 20, "a.gif", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "a.webp", "image/webp"),
        (b"%PDF-1.7\n%\xe2\xe3", "doc.pdf", "application/pdf"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00", "clip.mp4", "video/mp4"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00", "clip.mov", "video/quicktime"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00", "photo.heic", "image/heic"),
        (b"\x1a\x45\xdf\xa3\x00", "clip.webm", "video/webm"),
        (b"ID3\x04\x00", "song.mp3", "audio/mpeg"),
        (b"PK\x03\x04\x14\x00", "sheet.xlsx", ALLOWED["xlsx"].mime),
        (b"wOF2\x00\x01", "font.woff2", "font/woff2"),
        (b"hello, world\n", "notes.txt", "text/plain"),
        (b"<!doctype html><p>hi</p>", "page.html", "text/html"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "icon.svg", "image/svg+xml"),
        (b"true", "flag.json", "application/json"),
        (b"solid cube\nendsolid\n", "cube.stl", "model/stl"),
    ],
)
def test_detects_the_real_type(head: bytes, name: str, mime: str) -> None:
    """Known signatures and text types are recognised as what they are."""
    found = detect(head, name.rpartition(".")[2])
    assert found is not None
    assert found.mime == mime


def test_bytes_win_over_the_name() -> None:
    """JPEG bytes named .png are a JPEG, stored and served as one."""
    found = detect(jpeg(), "png")
    assert found is not None
    assert found.mime == "image/jpeg"


@pytest.mark.parametrize(
    ("head", "extension"),
    [
        (b"<html><script>alert(1)</script></html>", "png"),
        (b"<svg onload=alert(1)>", "jpg"),
        (b"MZ\x90\x00", "exe"),
        (b"\x00\x01binary\xff", "txt"),
        (b"PK\x03\x04", "zip"),
        (b"just text", None),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "png"),
    ],
)
def test_refuses_what_it_cannot_vouch_for(head: bytes, extension: str | None) -> None:
    """HTML named .png, binary named .txt, executables, unknown zips: no allowed type."""
    assert detect(head, extension) is None
