"""A file of every type the upload API accepts (the seed's list and AVIF): written by the
encoders the tests have where one exists (Pillow, pillow-heif, FFmpeg through PyAV), else the
format's own opening as its specification gives it (fonts, 3D models, office containers,
InDesign, DjVu...). ``tests/upload_api/test_detect.py`` holds the upload API's typing of each
to the maintained detectors."""

import io
import struct
import zipfile
from collections.abc import Callable

from tests.support import media_files as mf


def _ooxml(folder: str, content_type: str) -> bytes:
    """An Office Open XML package: its content types first, then the main part."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats'
            f'.org/package/2006/content-types"><Override PartName="/{folder}/main.xml" '
            f'ContentType="{content_type}"/></Types>',
        )
        package.writestr("_rels/.rels", "<Relationships/>")
        package.writestr(f"{folder}/main.xml", "<x/>")
    return out.getvalue()


_OLE: bytes = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(16) + b"\x3e\x00\x03\x00\xfe\xff"
_OLE += bytes(512 - len(_OLE))


def _sfnt(version: bytes) -> bytes:
    """A font's table directory: the version, one table (``head``), its record."""
    directory = version + struct.pack(">HHHH", 1, 16, 0, 0)
    return directory + b"head" + struct.pack(">III", 0, 28, 54) + bytes(54)


_OOXML = "application/vnd.openxmlformats-officedocument"
#: A Flash file's frame rectangle, rate and count after its header.
_SWF_FRAME = b"\x78\x00\x05\x5f\x00\x00\x0f\xa0\x00\x00\x18\x01\x00"

SAMPLES: dict[str, Callable[[], bytes]] = {
    "jpg": lambda: mf.camera_jpeg(64, 48),
    "jpeg": lambda: mf.image("jpg"),
    "png": lambda: mf.image("png"),
    "gif": lambda: mf.image("gif"),
    "webp": lambda: mf.image("webp"),
    "bmp": lambda: mf.image("bmp"),
    "tif": lambda: mf.image("tiff"),
    "tiff": lambda: mf.image("tiff"),
    "heic": lambda: mf.image("heic"),
    "heif": lambda: mf.image("heic"),
    "avif": lambda: mf.image("avif"),
    "psd": lambda: mf.psd(),
    "dng": lambda: mf.dng(),
    "arw": lambda: mf.dng(),
    "svg": lambda: mf.svg(),
    "eps": lambda: mf.eps(),
    "eps3": lambda: mf.eps(),
    "ept": lambda: b"\xc5\xd0\xd3\xc6\x20\x00\x00\x00" + bytes(24) + mf.eps(),
    "ps": lambda: b"%!PS-Adobe-3.0\n%%Pages: 1\n%%EndComments\nshowpage\n",
    "ai": lambda: mf.pdf(),
    "pdf": lambda: mf.pdf(),
    "mp4": lambda: mf.mp4(1, 64, 48),
    "mov": lambda: mf.mp4(1, 64, 48, muxer="mov"),
    "m4a": lambda: mf.sound("ipod", "aac", "fltp"),
    "ts": lambda: mf.mp4(1, 64, 48, muxer="mpegts"),
    "webm": lambda: mf.webm(),
    "mp3": lambda: mf.mp3(1),
    "wav": lambda: mf.sound("wav", "pcm_s16le", "s16"),
    "doc": lambda: _OLE,
    "xls": lambda: _OLE,
    "ppt": lambda: _OLE,
    "docx": lambda: _ooxml("word", f"{_OOXML}.wordprocessingml.document.main+xml"),
    "xlsx": lambda: _ooxml("xl", f"{_OOXML}.spreadsheetml.sheet.main+xml"),
    "pptx": lambda: _ooxml("ppt", f"{_OOXML}.presentationml.presentation.main+xml"),
    "rtf": lambda: b"{\\rtf1\\ansi\\deff0 {\\fonttbl {\\f0 Times;}} Hello.}\n",
    "ttf": lambda: _sfnt(b"\x00\x01\x00\x00"),
    "otf": lambda: _sfnt(b"OTTO"),
    "woff": lambda: b"wOFF" + b"\x00\x01\x00\x00" + struct.pack(">IHH", 100, 1, 0) + bytes(32),
    "woff2": lambda: b"wOF2" + b"\x00\x01\x00\x00" + struct.pack(">IHH", 100, 1, 0) + bytes(36),
    "eot": lambda: struct.pack("<IIII", 200, 100, 0x00020001, 0) + bytes(18) + b"LP" + bytes(46),
    "swf": lambda: b"FWS\x0a" + struct.pack("<I", 64) + _SWF_FRAME + bytes(43),
    "djvu": lambda: b"AT&TFORM\x00\x00\x00\x1aDJVUINFO\x00\x00\x00\x0a" + bytes(18),
    "flif": lambda: b"FLIF\x31\x00\x0a\x0a" + bytes(16),
    "bw": lambda: b"\x01\xda\x00\x01\x00\x01\x00\x10\x00\x10\x00\x01" + bytes(500),
    "indd": lambda: bytes.fromhex("0606edf5d81d46e5bd31efe7fe74b71d") + b"DOCUMENT" + bytes(100),
    "appimage": lambda: b"\x7fELF\x02\x01\x01\x00AI\x02" + bytes(53),
    "glb": lambda: b"glTF" + struct.pack("<II", 2, 20) + struct.pack("<I", 0) + b"JSON",
    "fbx": lambda: b"Kaydara FBX Binary  \x00\x1a\x00" + struct.pack("<I", 7400) + bytes(40),
    "3ds": lambda: b"MM" + struct.pack("<I", 22) + b"\x02\x00" + struct.pack("<II", 10, 3),
    "stl": lambda: (
        b"solid cube\n facet normal 0 0 1\n  outer loop\n   vertex 0 0 0\n"
        b"  endloop\n endfacet\nendsolid cube\n"
    ),
    "obj": lambda: b"# a triangle\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n",
    "ply": lambda: b"ply\nformat ascii 1.0\nelement vertex 0\nend_header\n",
    "dxf": lambda: b"  0\nSECTION\n  2\nHEADER\n  0\nENDSEC\n  0\nEOF\n",
    "gltf": lambda: b'{"asset": {"version": "2.0"}, "scenes": []}\n',
    "txt": lambda: b"hello, world\n",
    "html": lambda: b"<!DOCTYPE html>\n<html><head><title>t</title></head><body>hi</body></html>\n",
    "css": lambda: b"body { color: #333; margin: 0; }\n",
    "js": lambda: b"function hello() {\n  return 'hi';\n}\n",
    "mjs": lambda: b"export function hello() {\n  return 'hi';\n}\n",
    "json": lambda: b'{"hello": "world"}\n',
    "xml": lambda: b'<?xml version="1.0" encoding="UTF-8"?>\n<note>hi</note>\n',
    "rss": lambda: (
        b'<?xml version="1.0"?>\n<rss version="2.0"><channel><title>t</title></channel></rss>\n'
    ),
    "yaml": lambda: b"hello: world\nlist:\n  - 1\n",
    "yml": lambda: b"hello: world\n",
    "php": lambda: b"<?php\necho 'hi';\n",
    "py": lambda: b"#!/usr/bin/env python3\nprint('hi')\n",
    "m3u8": lambda: (
        b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXTINF:9.0,\na.ts\n#EXT-X-ENDLIST\n"
    ),
}
