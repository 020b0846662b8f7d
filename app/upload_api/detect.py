"""What a file really is: magic bytes for binary formats, the extension for text ones, as
ImageKit does. Pure. (What is inside a file, its size in pixels or its duration, is the media
workers' business: ``app.upload_api.media``.)

A file whose bytes say another allowed type is stored as what its bytes say (JPEG bytes named
``.png`` are a JPEG). A file whose extension names a binary format its bytes do not match (HTML
named ``.png``) is refused: it would otherwise be served as something it is not.
"""

import struct
from collections.abc import Callable
from typing import Final

from app.core.imagekit.filetypes import ALLOWED, FileType

#: Bytes of a file's start needed to recognise every signature below.
HEAD_BYTES: Final = 4096


def _ftyp_brand(head: bytes) -> bytes | None:
    return head[8:12] if len(head) >= 12 and head[4:8] == b"ftyp" else None


def _ftyp_brands(head: bytes) -> frozenset[bytes]:
    """The major and compatible brands of an ISO media file's ``ftyp`` box (within ``head``)."""
    if _ftyp_brand(head) is None:
        return frozenset()
    end = min(len(head), int.from_bytes(head[:4], "big"))
    return frozenset({head[8:12]} | {head[i : i + 4] for i in range(16, end - 3, 4)})


#: HEIF's brands: HEVC-coded, or generic; AVIF's are its own (AV1-coded HEIF).
_HEVC_BRANDS: Final = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis"})
_HEIF_BRANDS: Final = _HEVC_BRANDS | {b"mif1", b"msf1"}
_AVIF_BRANDS: Final = frozenset({b"avif", b"avis"})


def _is_avif(head: bytes) -> bool:
    """AVIF: its own major brand, or a generic image brand (``mif1``, ``msf1``, ``miaf``) with
    AVIF's among the compatible ones and no HEVC brand."""
    major = _ftyp_brand(head)
    if major in _AVIF_BRANDS:
        return True
    brands = _ftyp_brands(head)
    return (
        major in (b"mif1", b"msf1", b"miaf")
        and bool(brands & _AVIF_BRANDS)
        and not brands & _HEVC_BRANDS
    )


#: The atoms a classic QuickTime movie (before ``ftyp`` existed) begins with.
_QUICKTIME_ATOMS: Final = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})


def _is_classic_quicktime(head: bytes) -> bool:
    """A first atom QuickTime begins with, its size a real one (0: to the end of the file; 1: a
    64-bit size follows)."""
    if len(head) < 8 or head[4:8] not in _QUICKTIME_ATOMS:
        return False
    size = int.from_bytes(head[:4], "big")
    return size in (0, 1) or size >= 8


_BMP_HEADERS: Final = {struct.pack("<I", n) for n in (12, 40, 52, 56, 64, 108, 124)}


def _is_ts(head: bytes) -> bool:
    return len(head) >= 377 and head[0] == head[188] == head[376] == 0x47


def _is_mp3(head: bytes) -> bool:
    return head.startswith(b"ID3") or (
        len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06 != 0
    )


# family -> (test, canonical extension, extensions whose files look like this)
_SIGNATURES: Final[tuple[tuple[str, Callable[[bytes], bool], str | None, frozenset[str]], ...]] = (
    ("png", lambda h: h.startswith(b"\x89PNG\r\n\x1a\n"), "png", frozenset({"png"})),
    ("jpeg", lambda h: h.startswith(b"\xff\xd8\xff"), "jpg", frozenset({"jpg", "jpeg"})),
    ("gif", lambda h: h[:6] in (b"GIF87a", b"GIF89a"), "gif", frozenset({"gif"})),
    ("webp", lambda h: h[:4] == b"RIFF" and h[8:12] == b"WEBP", "webp", frozenset({"webp"})),
    ("wav", lambda h: h[:4] == b"RIFF" and h[8:12] == b"WAVE", "wav", frozenset({"wav"})),
    (
        "tiff",
        lambda h: h[:4] in (b"II*\x00", b"MM\x00*"),
        "tiff",
        frozenset({"tif", "tiff", "arw", "dng"}),
    ),
    ("pdf", lambda h: h.startswith(b"%PDF-"), "pdf", frozenset({"pdf", "ai"})),
    (
        "postscript",
        lambda h: h.startswith((b"%!PS", b"\xc5\xd0\xd3\xc6")),
        "ps",
        frozenset({"ps", "eps", "eps3", "ept", "ai"}),
    ),
    ("psd", lambda h: h.startswith(b"8BPS"), "psd", frozenset({"psd"})),
    ("avif", _is_avif, "avif", frozenset({"avif"})),
    ("heif", lambda h: _ftyp_brand(h) in _HEIF_BRANDS, "heic", frozenset({"heic", "heif"})),
    ("quicktime", lambda h: _ftyp_brand(h) == b"qt  ", "mov", frozenset({"mov", "mp4"})),
    ("classic quicktime", _is_classic_quicktime, "mov", frozenset({"mov", "mp4", "m4a"})),
    ("m4a", lambda h: _ftyp_brand(h) in (b"M4A ", b"M4B "), "m4a", frozenset({"m4a", "mp4"})),
    ("mp4", lambda h: _ftyp_brand(h) is not None, "mp4", frozenset({"mp4", "mov", "m4a"})),
    ("webm", lambda h: h.startswith(b"\x1a\x45\xdf\xa3"), "webm", frozenset({"webm"})),
    ("woff2", lambda h: h.startswith(b"wOF2"), "woff2", frozenset({"woff2"})),
    ("woff", lambda h: h.startswith(b"wOFF"), "woff", frozenset({"woff"})),
    ("otf", lambda h: h.startswith(b"OTTO"), "otf", frozenset({"otf"})),
    ("bmp", lambda h: h[:2] == b"BM" and h[14:18] in _BMP_HEADERS, "bmp", frozenset({"bmp"})),
    (
        "ttf",
        lambda h: h.startswith((b"\x00\x01\x00\x00", b"true\x00")),
        "ttf",
        frozenset({"ttf", "otf"}),
    ),
    ("eot", lambda h: len(h) > 35 and h[34:36] == b"LP", "eot", frozenset({"eot"})),
    (
        "ole",
        lambda h: h.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"),
        None,
        frozenset({"doc", "xls", "ppt"}),
    ),
    ("zip", lambda h: h.startswith(b"PK\x03\x04"), None, frozenset({"docx", "xlsx", "pptx"})),
    ("swf", lambda h: h[:3] in (b"FWS", b"CWS", b"ZWS"), "swf", frozenset({"swf"})),
    ("glb", lambda h: h.startswith(b"glTF"), "glb", frozenset({"glb"})),
    ("djvu", lambda h: h.startswith(b"AT&TFORM"), "djvu", frozenset({"djvu"})),
    ("flif", lambda h: h.startswith(b"FLIF"), "flif", frozenset({"flif"})),
    ("rtf", lambda h: h.startswith(b"{\\rtf"), "rtf", frozenset({"rtf"})),
    ("sgi", lambda h: h.startswith(b"\x01\xda"), "bw", frozenset({"bw"})),
    ("elf", lambda h: h.startswith(b"\x7fELF"), "appimage", frozenset({"appimage"})),
    (
        "indd",
        lambda h: h.startswith(bytes.fromhex("0606edf5d81d46e5bd31efe7fe74b71d")),
        "indd",
        frozenset({"indd"}),
    ),
    (
        "ply",
        lambda h: h.startswith(b"ply\n") or h.startswith(b"ply\r\n"),
        "ply",
        frozenset({"ply"}),
    ),
    ("mpegts", _is_ts, "ts", frozenset({"ts"})),
    ("mp3", _is_mp3, "mp3", frozenset({"mp3"})),
)

#: Binary formats without a reliable signature: trusted by extension (and served inert).
_UNSNIFFABLE: Final = frozenset({"3ds", "fbx", "obj", "stl", "dxf", "gltf", "eps", "eps3", "ept"})


#: Bytes no text file holds, whatever its encoding (libmagic's rule, ``file``'s encoding.c):
#: the C0 controls but BEL to CR and ESC, and DEL.
_NEVER_TEXT: Final = bytes([*range(7), *range(14, 27), *range(28, 32), 127])
#: Byte-order marks, longest first (UTF-32LE's begins as UTF-16LE's does).
_BOMS: Final = (
    (b"\xff\xfe\x00\x00", "utf-32le"),
    (b"\x00\x00\xfe\xff", "utf-32be"),
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe", "utf-16le"),
    (b"\xfe\xff", "utf-16be"),
)


def _decodes(data: bytes, codec: str) -> str | None:
    """``data`` decoded, a character cut off at its end allowed; None if it is not ``codec``."""
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        cut_off = exc.end == len(data) and exc.reason in (
            "unexpected end of data",
            "truncated data",
        )
        return data[: exc.start].decode(codec) if cut_off else None


def text_encoding(head: bytes) -> str | None:
    """How a text file's first bytes are encoded, or None when they are not text. Unicode is
    named: the byte-order mark's encoding (UTF-8, UTF-16, UTF-32), else UTF-8 when they decode
    as it (ASCII included). Other bytes that text may hold are text too, in a single-byte
    encoding that the bytes cannot tell (ISO-8859-1, Windows-1252, KOI8-R...): ``"8bit"``.
    NUL and the control bytes text never holds make it binary, as ``file`` (libmagic) judges;
    tests/upload_api/test_detect.py holds this to libmagic's verdict."""
    for mark, codec in _BOMS:
        if head.startswith(mark):
            text = _decodes(head[len(mark) :], codec)
            # the characters of the byte values that are never text, in any encoding
            if text is None or _binary(text.encode("latin-1", "ignore")):
                return None
            return codec
    if _binary(head):
        return None
    if _decodes(head, "utf-8") is not None:
        return "utf-8"
    return "8bit"


def charset_of(head: bytes) -> str | None:
    """A text file's Unicode encoding, to serve it with (``text_encoding``); None for a
    single-byte one, which its bytes cannot name."""
    found = text_encoding(head)
    return None if found == "8bit" else found


def _binary(data: bytes) -> bool:
    """Whether ``data`` holds a byte no text holds."""
    return len(data.translate(None, _NEVER_TEXT)) != len(data)


def detect(head: bytes, extension: str | None) -> FileType | None:
    """The allowed file type these first bytes are, given the name's extension; None if none."""
    declared = ALLOWED.get(extension) if extension else None
    if declared is not None and declared.text:
        # Text formats go by extension (as on ImageKit); no weak signature may override them.
        return declared if text_encoding(head) is not None else None
    for _, test, canonical, family in _SIGNATURES:
        if test(head):
            if declared is not None and declared.extension in family:
                return declared
            return ALLOWED[canonical] if canonical else None
    if declared is None:
        return None
    return declared if declared.extension in _UNSNIFFABLE else None
