"""What a file really is: magic bytes for binary types, extension for text types (whose bytes
must be text, in any encoding), held to libmagic's verdict."""

import codecs

import magic
import puremagic
import pytest

from app.core.imagekit.filetypes import ALLOWED
from app.upload_api.detect import HEAD_BYTES, detect, text_encoding
from tests.support import media_files as mf
from tests.support.samples import jpeg, png
from tests.support.type_samples import SAMPLES


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
        (b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1heic", "photo.heic", "image/heic"),
        (b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00", "photo.avif", "image/avif"),
        (b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avif", "photo.avif", "image/avif"),
        (b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00", "photo.heic", "image/avif"),
        (b"\x00\x00\x1b\x3emoov\x00\x00\x00\x6cmvhd", "clip.mov", "video/quicktime"),
        (b"\x00\x00\x00\x08wide\x00\x01\x00\x00mdat", "clip.mov", "video/quicktime"),
        (b"\x00\x00\x00\x01mdat\x00\x00\x00\x00", "clip.mov", "video/quicktime"),
        (b"\x00\x00\x1b\x3emoov\x00\x00\x00\x6cmvhd", "clip.mp4", "video/mp4"),
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
        (b"text with a \x01 control byte", "txt"),
        (b"\xff\xfeh\x00\x00\x00", "txt"),  # UTF-16 with a NUL character
        (b"\x00\x00\x00\x04moov", "mov"),  # an atom smaller than its own header
        (b"PK\x03\x04", "zip"),
        (b"just text", None),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "png"),
    ],
)
def test_refuses_what_it_cannot_vouch_for(head: bytes, extension: str | None) -> None:
    """HTML named .png, binary named .txt, executables, unknown zips: no allowed type."""
    assert detect(head, extension) is None


#: Text as people save it: every encoding an editor offers for these languages.
TEXTS = {
    "en": "Plain notes, nothing more.\n",
    "fr": "Café crème, déjà vu, naïve façade.\n",
    "de": "Grüße aus Köln: Straße, Übermaß.\n",
    "ru": "Привет, мир! Съешь ещё этих булок.\n",
    "quotes": "“Smart quotes” \u2013 and a € sign…\n",
}
ENCODINGS = {
    "en": ["ascii", "utf-8", "utf-8-sig", "utf-16", "utf-16-be", "utf-32"],
    "fr": ["latin-1", "cp1252", "utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32"],
    "de": ["latin-1", "cp1252", "iso-8859-15", "utf-8", "utf-16", "utf-16-be"],
    "ru": ["cp1251", "koi8-r", "utf-8", "utf-16", "utf-32"],
    "quotes": ["cp1252", "utf-8", "utf-16"],
}
_BOM_NEEDED = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}


def encoded(language: str, encoding: str, repeat: int = 40) -> bytes:
    """The text in ``encoding``, as an editor writes it (UTF-16 with its byte-order mark)."""
    data = (TEXTS[language] * repeat).encode(encoding)
    return _BOM_NEEDED.get(encoding, b"") + data


#: The encoding named for each Unicode one (Python's "utf-16" and "utf-32" write little-endian,
#: with the mark); ASCII is UTF-8.
NAMED = {
    "ascii": "utf-8",
    "utf-8": "utf-8",
    "utf-8-sig": "utf-8",
    "utf-16": "utf-16le",
    "utf-16-le": "utf-16le",
    "utf-16-be": "utf-16be",
    "utf-32": "utf-32le",
}


@pytest.mark.parametrize("extension", ["txt", "html", "xml", "css", "json", "svg"])
@pytest.mark.parametrize(
    ("language", "encoding"),
    [(language, encoding) for language, names in ENCODINGS.items() for encoding in names],
)
def test_text_in_any_common_encoding_is_text(extension: str, language: str, encoding: str) -> None:
    """Latin-1, Windows-1252, KOI8-R, UTF-8, UTF-16 and UTF-32 (with a byte-order mark): text,
    whatever the text type; Unicode is named, a single-byte encoding is not guessed."""
    head = encoded(language, encoding)[:HEAD_BYTES]
    assert detect(head, extension) is ALLOWED[extension]
    assert text_encoding(head) == NAMED.get(encoding, "8bit")


BINARY = {
    "png": png(),
    "jpeg": jpeg(),
    "mp4": mf.mp4(1, 64, 48),
    "pdf": mf.image("pdf", 32, 32),
    "random": bytes(range(256)) * 16,
    "utf-16 without a mark": "Hello".encode("utf-16-le") * 10,
    "elf": b"\x7fELF\x02\x01\x01\x00" + bytes(64),
}


@pytest.mark.parametrize(
    "head",
    [encoded(language, encoding) for language, names in ENCODINGS.items() for encoding in names]
    + list(BINARY.values()),
)
def test_text_or_not_as_libmagic_judges(head: bytes) -> None:
    """The hand-written text check (a few µs where libmagic takes 300-500 µs a head) gives
    libmagic's verdict on the same bytes: text, in which Unicode encoding, or binary."""
    head = head[:HEAD_BYTES]
    theirs = magic.Magic(mime_encoding=True).from_buffer(head)
    ours = text_encoding(head)
    if theirs == "binary":
        assert ours is None
    elif theirs in ("us-ascii", "utf-8"):
        assert ours == "utf-8"
    elif theirs.startswith(("utf-16", "utf-32")):
        assert ours == theirs
    else:  # iso-8859-1, unknown-8bit: a single-byte encoding the bytes cannot name
        assert ours == "8bit", theirs


#: Where libmagic's name differs, and why: camera raw is TIFF inside (ImageKit types it by the
#: extension within TIFF's family), and libmagic 5.44 does not know a QuickTime movie whose
#: first atom is ``free`` (this project's rule, from QuickTime's own file format document).
LIBMAGIC_DIFFERS = {
    "raw.dng": "image/tiff",
    "sony.arw": "image/tiff",
    "old.mov": "application/octet-stream",
}


@pytest.mark.parametrize(("name", "data"), [(name, data) for name, data, _ in mf.REAL_FILES])
def test_real_files_are_what_libmagic_says(name: str, data: bytes) -> None:
    """Every real file the tests make (images, camera raw, video, audio, PDF, EPS, SVG) is
    typed as libmagic types it, or as the table above says and why."""
    found = detect(data[:HEAD_BYTES], name.rpartition(".")[2])
    assert found is not None
    theirs = magic.Magic(mime=True).from_buffer(data[:HEAD_BYTES])
    assert LIBMAGIC_DIFFERS.get(name, found.mime) == theirs


#: Where a detector names a type otherwise, and why: camera raw is TIFF inside (typed by its
#: extension within TIFF's family); which Office program wrote an OLE file is in the
#: container's directory, which the tests' minimal containers lack (test_corpus.py: real Word,
#: Excel and PowerPoint files, typed exactly by libmagic).
SAME_THING = {
    "arw": {"image/tiff"},
    "dng": {"image/tiff"},
    "doc": {"application/x-ole-storage"},
    "xls": {"application/x-ole-storage"},
    "ppt": {"application/x-ole-storage"},
}
#: Formats libmagic recognises but has no MIME type for: its description names them.
DESCRIBED = {
    "bw": "SGI image",
    "fbx": "Kaydara FBX model",
    "flif": "FLIF image",
    "indd": "Adobe InDesign",
    "eot": "Embedded OpenType",
    "appimage": "ELF",
    "ply": "PLY model",
}
#: Formats neither libmagic 5.44 nor puremagic knows, typed by this project's rules alone:
#: 3D Studio's chunk id, an MPEG transport stream's sync byte every 188 bytes (libmagic
#: misses FFmpeg's), and Wavefront OBJ and ASCII STL, which are text without a signature
#: (trusted by their extension and served inert).
NEITHER = {"3ds", "ts", "obj", "stl"}


@pytest.mark.parametrize("extension", sorted(ALLOWED))
def test_every_accepted_type_is_what_the_maintained_detectors_say(extension: str) -> None:
    """A file of each of the 67 accepted types (the seed's 66 and AVIF) is typed as that type,
    and libmagic (by MIME type or description) or puremagic names it so, or, for a text type,
    libmagic finds text; the few formats neither knows are listed above with the rule used."""
    data = SAMPLES[extension]()
    ours = ALLOWED[extension]
    assert detect(data[:HEAD_BYTES], extension) is ours
    names = {ours.mime, *ours.aliases, *SAME_THING.get(extension, ())}
    names.discard("application/octet-stream")  # "no idea" is not agreeing
    theirs = magic.Magic(mime=True).from_buffer(data)
    try:
        also = {found.mime_type for found in puremagic.magic_string(data)}
    except puremagic.PureError:
        also = set()
    described = DESCRIBED.get(extension)
    agree = (
        theirs in names
        or bool(names & also)
        or (described is not None and described in magic.from_buffer(data))
        or (ours.text and magic.Magic(mime_encoding=True).from_buffer(data) != "binary")
    )
    assert agree is (extension not in NEITHER), (theirs, also)
