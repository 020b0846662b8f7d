"""The file types the upload API accepts, from its documentation (``shared/seeds/``), and AVIF.

Each allowed extension maps to one canonical MIME type (what credentials pin in ``checks`` and
what the upload API reports). A declared type is accepted for an extension when it is the
canonical one, one of the names listed here (phones and old browsers), a type an installed
platform database gives the extension (``platforms``: shared-mime-info, which Chromium on Linux
reads, and Python's ``mimetypes``), or no type at all (empty, or ``application/octet-stream``):
whatever was declared, a credential pins the canonical type. ``text`` marks formats recognised
by extension rather than magic bytes, as ImageKit does.
"""

from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from types import MappingProxyType
from typing import Final

from app.core.imagekit import platforms


class Kind(StrEnum):
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    DOCUMENT = "document"
    TEXT = "text"
    FONT = "font"
    MODEL = "model"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class FileType:
    extension: str
    mime: str
    kind: Kind
    text: bool = False
    aliases: frozenset[str] = field(default_factory=frozenset)

    def accepts(self, mime: str) -> bool:
        """Whether a declared MIME type may name this file type (parameters ignored)."""
        mime = mime.partition(";")[0].strip().lower()
        return mime == self.mime or mime in self.aliases or mime in self.accepted()

    def accepted(self) -> frozenset[str]:
        """Every type a client may declare for this file type (besides the canonical one)."""
        return _accepted(self.extension, self.aliases)


#: A file that no platform database knows comes with no type at all.
UNTYPED: Final = frozenset({"", "application/octet-stream"})


@cache
def _accepted(extension: str, aliases: frozenset[str]) -> frozenset[str]:
    return aliases | UNTYPED | platforms.types_for(extension)


def _t(ext: str, mime: str, kind: Kind, *aliases: str, text: bool = False) -> FileType:
    return FileType(ext, mime, kind, text, frozenset(aliases))


_OCTET = "application/octet-stream"
_PS = "application/postscript"

#: Every extension in the upload API's "Allowed file types" table, in the table's order.
_TABLE: Final = (
    _t("jpg", "image/jpeg", Kind.IMAGE, "image/jpg", "image/pjpeg"),
    _t("jpeg", "image/jpeg", Kind.IMAGE, "image/jpg", "image/pjpeg"),
    _t("png", "image/png", Kind.IMAGE),
    _t("webp", "image/webp", Kind.IMAGE),
    _t("gif", "image/gif", Kind.IMAGE),
    _t("svg", "image/svg+xml", Kind.IMAGE, text=True),
    _t("heif", "image/heif", Kind.IMAGE, "image/heif-sequence"),
    _t("heic", "image/heic", Kind.IMAGE, "image/heic-sequence", "image/heif"),
    _t("bmp", "image/bmp", Kind.IMAGE, "image/x-ms-bmp", "image/x-bmp"),
    _t("flif", "image/flif", Kind.IMAGE, _OCTET),
    _t("arw", "image/x-sony-arw", Kind.IMAGE, _OCTET),
    _t("tif", "image/tiff", Kind.IMAGE),
    _t("tiff", "image/tiff", Kind.IMAGE),
    _t("pdf", "application/pdf", Kind.DOCUMENT),
    _t("js", "text/javascript", Kind.TEXT, "application/javascript", text=True),
    _t("mjs", "text/javascript", Kind.TEXT, "application/javascript", text=True),
    _t("css", "text/css", Kind.TEXT, text=True),
    _t("php", "application/x-httpd-php", Kind.TEXT, "text/x-php", "application/x-php", text=True),
    _t("py", "text/x-python", Kind.TEXT, "text/x-script.python", "application/x-python", text=True),
    _t("yml", "application/yaml", Kind.TEXT, "text/yaml", "application/x-yaml", text=True),
    _t("yaml", "application/yaml", Kind.TEXT, "text/yaml", "application/x-yaml", text=True),
    _t("woff2", "font/woff2", Kind.FONT, "application/font-woff2"),
    _t("woff", "font/woff", Kind.FONT, "application/font-woff"),
    _t("ttf", "font/ttf", Kind.FONT, "application/x-font-ttf", "application/font-sfnt"),
    _t("otf", "font/otf", Kind.FONT, "application/x-font-otf", "application/font-sfnt"),
    _t("eot", "application/vnd.ms-fontobject", Kind.FONT),
    _t("ps", _PS, Kind.DOCUMENT),
    _t("txt", "text/plain", Kind.TEXT, text=True),
    _t("mp4", "video/mp4", Kind.VIDEO),
    _t("webm", "video/webm", Kind.VIDEO),
    _t("mov", "video/quicktime", Kind.VIDEO),
    _t("swf", "application/x-shockwave-flash", Kind.OTHER),
    _t("ts", "video/mp2t", Kind.VIDEO),
    _t(
        "m3u8",
        "application/vnd.apple.mpegurl",
        Kind.TEXT,
        "application/x-mpegurl",
        "audio/x-mpegurl",
        "audio/mpegurl",
        text=True,
    ),
    _t("json", "application/json", Kind.TEXT, text=True),
    _t("xml", "application/xml", Kind.TEXT, "text/xml", text=True),
    _t("rss", "application/rss+xml", Kind.TEXT, "application/xml", "text/xml", text=True),
    _t("html", "text/html", Kind.TEXT, text=True),
    _t("mp3", "audio/mpeg", Kind.AUDIO, "audio/mp3"),
    _t("m4a", "audio/mp4", Kind.AUDIO, "audio/x-m4a", "audio/m4a"),
    _t("wav", "audio/wav", Kind.AUDIO, "audio/x-wav", "audio/wave", "audio/vnd.wave"),
    _t("doc", "application/msword", Kind.DOCUMENT),
    _t("ppt", "application/vnd.ms-powerpoint", Kind.DOCUMENT),
    _t("xls", "application/vnd.ms-excel", Kind.DOCUMENT),
    _t(
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        Kind.DOCUMENT,
    ),
    _t(
        "pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        Kind.DOCUMENT,
    ),
    _t("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", Kind.DOCUMENT),
    _t("eps", _PS, Kind.IMAGE, "application/eps", "image/x-eps"),
    _t("eps3", _PS, Kind.IMAGE, "application/eps", "image/x-eps", _OCTET),
    _t("indd", "application/x-indesign", Kind.DOCUMENT, _OCTET),
    _t("ai", _PS, Kind.IMAGE, "application/illustrator", "application/pdf"),
    _t("bw", "image/x-sgi-bw", Kind.IMAGE, "image/x-sgi", "image/sgi", _OCTET),
    _t(
        "psd",
        "image/vnd.adobe.photoshop",
        Kind.IMAGE,
        "image/x-photoshop",
        "application/x-photoshop",
        "application/photoshop",
        "image/psd",
    ),
    _t("rtf", "application/rtf", Kind.DOCUMENT, "text/rtf"),
    _t("ept", _PS, Kind.IMAGE, _OCTET),
    _t("glb", "model/gltf-binary", Kind.MODEL, _OCTET),
    _t("dxf", "image/vnd.dxf", Kind.MODEL, "application/dxf", _OCTET),
    _t("3ds", "image/x-3ds", Kind.MODEL, "application/x-3ds", _OCTET),
    _t("obj", "model/obj", Kind.MODEL, _OCTET),
    _t("stl", "model/stl", Kind.MODEL, "application/sla", "model/x.stl-binary", _OCTET),
    _t("fbx", "application/vnd.autodesk.fbx", Kind.MODEL, _OCTET),
    _t("ply", "model/ply", Kind.MODEL, "application/ply", _OCTET),
    _t("gltf", "model/gltf+json", Kind.MODEL, "application/json"),
    _t("djvu", "image/vnd.djvu", Kind.DOCUMENT, "image/x-djvu"),
    _t("dng", "image/x-adobe-dng", Kind.IMAGE, "image/dng", _OCTET),
    _t("appimage", "application/vnd.appimage", Kind.OTHER, "application/x-executable", _OCTET),
)

#: Beyond the table, which predates it: AVIF, an image format every current browser shows
#: (ImageKit accepts and delivers it). Without it an AVIF would be taken for HEIC, its
#: container's other image format, and served as one, which browsers do not show.
_BEYOND_TABLE: Final = (_t("avif", "image/avif", Kind.IMAGE, "image/avif-sequence"),)

ALLOWED: Final = MappingProxyType({t.extension: t for t in _TABLE + _BEYOND_TABLE})


def extension_of(file_name: str) -> str | None:
    """The lower-cased extension of a file name, or None when it has none."""
    stem, dot, ext = file_name.rpartition(".")
    if not dot or not stem or not ext:
        return None
    return ext.lower()


def lookup(extension: str) -> FileType | None:
    """The allowed file type for an extension (any case), or None."""
    return ALLOWED.get(extension.lower())
