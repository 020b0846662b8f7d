"""What is inside a stored file, read by real libraries: Pillow (with pillow-heif for HEIC/HEIF
and AVIF) for images, PyAV (FFmpeg) for video and audio, defusedxml for SVG. Shaped as
ImageKit shapes its upload response: ``width``/``height``, ``duration``/``bitRate``/codecs, the
``metadata`` object and ``embeddedMetadata`` (EXIF, IPTC, XMP).

These functions run in the media workers' processes (``app.upload_api.workers``), never on the
event loop: a library may take long or use much memory on a hostile file, and the worker is
bounded in both. Every function returns plain JSON-able data; a file a library cannot read
gives what could be read (possibly nothing), never an exception the upload would fail on.
"""

import functools
import math
import re
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final, TypedDict

from app.upload_api import exiftool

#: Thumbnails fit in a square of this many pixels (ImageKit's media library thumbnail size).
#: Images with more pixels than this are not decoded (hasTransparency, thumbnails).
MAX_DECODED_PIXELS: Final = 100_000_000


class Probe(TypedDict, total=False):
    """What a file holds, in ImageKit's names. Every key may be missing."""

    width: int
    height: int
    duration: int
    bitRate: int
    videoCodec: str
    audioCodec: str
    #: ImageKit's (legacy) ``metadata`` object.
    metadata: dict[str, Any]
    #: EXIF, IPTC and XMP, flat.
    embeddedMetadata: dict[str, Any]
    #: Whether a thumbnail can be made of the file.
    thumbnail: bool


def probe(path: str, extension: str, kind: str, *, embedded: bool = True) -> Probe:
    """What ``path`` holds; ``extension`` is the canonical one of its detected type and
    ``kind`` its ``Kind`` value (image, video, audio...). ``embeddedMetadata`` and
    ``metadata.exif`` are ExifTool's (``app.upload_api.exiftool``; any kind of file) where it
    is installed, read only when ``embedded`` is asked for; else this module's own reading of
    EXIF, IPTC, XMP and container tags (images, video and audio)."""
    found: Probe = {}
    if extension == "svg":
        found = _svg(Path(path))
    elif kind == "image":
        found = _image(path, extension, hashed=embedded)
    elif kind in ("video", "audio"):
        found = _media(path, extension, video=kind == "video")
    if embedded:  # documents and fonts too: ExifTool reads their metadata
        by_exiftool = exiftool.read(path, extension)
        if by_exiftool is not None:
            found["embeddedMetadata"] = by_exiftool.embedded
            if "metadata" in found:
                _from_exiftool(found["metadata"], by_exiftool)
    return found


#: Pointers to EXIF's directories, which ExifTool does not report as tags: kept from Pillow's
#: reading for ``metadata.exif``, as ImageKit has them.
_DIRECTORY_POINTERS: Final = {"image": ("ExifOffset", "GPSInfo"), "exif": ("InteropOffset",)}


def _from_exiftool(metadata: dict[str, Any], by_exiftool: exiftool.Found) -> None:
    """``metadata`` with ExifTool's ``exif`` groups (its names and values) and any ICC profile
    it found, wherever the format keeps it (a GIF's application extension, which Pillow does
    not read)."""
    if by_exiftool.embedded.get("ProfileFileSignature") == "acsp":
        metadata["hasColorProfile"] = True
    if not by_exiftool.exif:
        return
    ours = metadata.get("exif") or {}
    for group, names in _DIRECTORY_POINTERS.items():
        for name in names:
            if name in ours.get(group, {}) and group in by_exiftool.exif:
                by_exiftool.exif[group].setdefault(name, ours[group][name])
    metadata["exif"] = by_exiftool.exif


# -- images ------------------------------------------------------------------------------------


def open_image(path: str, *, decode: bool) -> Any:
    """The image, opened lazily (its header read). Pillow's decompression-bomb guard applies
    only where the pixels will be decoded: reading a huge image's size is safe and wanted."""
    from PIL import Image

    _register_heif()
    Image.MAX_IMAGE_PIXELS = MAX_DECODED_PIXELS if decode else None
    return Image.open(path)


@functools.cache
def _register_heif() -> None:
    """Teach Pillow HEIC/HEIF, once per process."""
    import pillow_heif

    pillow_heif.register_heif_opener()


def _image(path: str, extension: str, *, hashed: bool = False) -> Probe:
    from PIL import Image, UnidentifiedImageError

    try:
        image = open_image(path, decode=False)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return {}
    with image:
        width, height = _largest_size(image)
        metadata: dict[str, Any] = {
            "height": height,
            "width": width,
            "format": format_name(extension),
            "hasColorProfile": bool(image.info.get("icc_profile")),
            "hasTransparency": _has_transparency(image),
        }
        exif = _exif_groups(image)
        dpi = image.info.get("dpi")
        if image.format == "TIFF" and _X_RESOLUTION not in image.tag_v2:
            dpi = None  # Pillow's stand-in (1, 1) for a TIFF that states no resolution
        density = _density(dpi) or _exif_density(exif.get("image", {})) or _photoshop_density(image)
        if density is not None:
            metadata["density"] = density
        quality = _jpeg_quality(image)
        if quality is not None:
            metadata["quality"] = quality
        if exif:
            metadata["exif"] = exif
        embedded = _embedded(exif, image)
        decodable = image.format not in _NOT_DECODABLE and width * height <= MAX_DECODED_PIXELS
        if hashed and decodable:
            found_hash = perceptual_hash(image)
            if found_hash is not None:
                metadata["pHash"] = found_hash
        return {
            "width": width,
            "height": height,
            "metadata": metadata,
            "embeddedMetadata": embedded,
            "thumbnail": decodable,
        }


#: Side of the grey picture a perceptual hash is taken from, and of its lowest frequencies kept.
_HASH_SIDE: Final = 32
_HASH_LOW: Final = 8
#: DCT-II's basis (unnormalised, as SciPy's ``dct``): ``_DCT[k][n]`` for the lowest frequencies.
_DCT: Final = tuple(
    tuple(2 * math.cos(math.pi * k * (2 * n + 1) / (2 * _HASH_SIDE)) for n in range(_HASH_SIDE))
    for k in range(_HASH_LOW)
)


def perceptual_hash(image: Any) -> str | None:
    """ImageKit's ``pHash``: the DCT perceptual hash (imagehash's ``phash``, 64 bits as 16 hex
    digits): the picture grey at 32 x 32 (Lanczos), the 2-D DCT's 8 x 8 lowest frequencies,
    each bit whether one is above their median. The whole picture is decoded, as imagehash
    decodes it: a JPEG read at a smaller scale (draft mode) hashes 8 to 20 bits apart, where
    ImageKit calls pictures under 10 apart similar (a 12-megapixel JPEG: 100-130 ms, when the
    answer asks for ``metadata``).

    Hand-written rather than imagehash, which needs NumPy, SciPy and PyWavelets (about 80 MB
    in the image) for a 32 x 32 transform: 2 ms here; tests/upload_api/test_phash.py holds it
    to imagehash's hash."""
    from PIL import Image

    try:
        grey = image.convert("L").resize((_HASH_SIDE, _HASH_SIDE), Image.Resampling.LANCZOS)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    pixels = grey.tobytes()
    rows = [pixels[row * _HASH_SIDE : (row + 1) * _HASH_SIDE] for row in range(_HASH_SIDE)]
    # along the columns (over rows), the lowest frequencies only; then along the rows
    columns = [
        [sum(basis[x] * rows[x][y] for x in range(_HASH_SIDE)) for y in range(_HASH_SIDE)]
        for basis in _DCT
    ]
    low = [
        [sum(b * c for b, c in zip(basis, row, strict=True)) for basis in _DCT] for row in columns
    ]
    # rounded: a coefficient that is zero (a picture flat along one axis) is zero, not the
    # sums' rounding noise on either side of it
    values = [round(value, 6) for row in low for value in row]
    middle = sorted(values)
    median = (middle[31] + middle[32]) / 2
    bits = "".join("1" if value > median else "0" for value in values)
    return f"{int(bits, 2):016x}"


#: Formats whose pixels Pillow cannot decode here (EPS needs Ghostscript).
_NOT_DECODABLE: Final = frozenset({"EPS"})
_FORMATS: Final = {"jpeg": "jpg", "tif": "tiff", "heif": "heic", "eps3": "eps", "ept": "eps"}


def format_name(extension: str) -> str:
    """``metadata.format`` for a file of this (canonical) extension: ImageKit's names."""
    return _FORMATS.get(extension, extension)


#: TIFF tag of the sub-image directories (camera raw: the full image is often a sub-image).
_SUB_IFDS: Final = 0x014A
_X_RESOLUTION: Final = 0x011A


def _largest_size(image: Any) -> tuple[int, int]:
    """The image's size; for TIFF-based camera raw (DNG, ARW), the largest of its sub-images,
    not the preview in the first directory."""
    width, height = image.size
    if image.format != "TIFF":
        return width, height
    try:
        from PIL import TiffImagePlugin

        offsets = image.tag_v2.get(_SUB_IFDS)
        if not offsets:
            return width, height
        fp = image.fp
        for offset in offsets if isinstance(offsets, tuple) else (offsets,):
            fp.seek(offset)
            ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=image.tag_v2.prefix)
            ifd.load(fp)
            w, h = ifd.get(256), ifd.get(257)
            if isinstance(w, int) and isinstance(h, int) and w * h > width * height:
                width, height = w, h
    except (OSError, ValueError, TypeError, SyntaxError):
        pass
    return width, height


def _has_transparency(image: Any) -> bool:
    if "transparency" in image.info:
        return True
    if "A" not in image.getbands():
        return False
    if image.width * image.height > MAX_DECODED_PIXELS:
        return True
    try:
        low, _ = image.getchannel("A").getextrema()
    except (OSError, ValueError, SyntaxError):
        return True
    return bool(low < 255)


def _density(dpi: object) -> int | None:
    if isinstance(dpi, tuple) and dpi and isinstance(dpi[0], int | float) and dpi[0] > 0:
        return round(float(dpi[0]))
    return None


def _exif_density(tags: Mapping[str, Any]) -> int | None:
    """Pixels per inch from EXIF's XResolution (ResolutionUnit 2: inches, 3: centimetres)."""
    per_unit = {2: 1.0, 3: 2.54}.get(tags.get("ResolutionUnit", 2))
    resolution = tags.get("XResolution")
    if per_unit is None or not isinstance(resolution, float | int) or resolution <= 0:
        return None
    return round(resolution * per_unit)


def _photoshop_density(image: Any) -> int | None:
    """Pixels per inch from a Photoshop file's ResolutionInfo resource (1005): a 16.16 fixed
    number, pixels per inch whatever unit it is displayed in."""
    for resource, _, data in getattr(image, "resources", None) or ():
        if resource == 1005 and len(data) >= 4:
            per_inch = round(int.from_bytes(data[:4], "big") / 65536)
            return per_inch if per_inch > 0 else None
    return None


#: The IJG standard luminance quantisation table (quality 50); JPEG quality is estimated by
#: comparing the file's first table with it, scaled as libjpeg scales it.
_STANDARD_LUMINANCE: Final = (
    *(16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55),
    *(14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62),
    *(18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92),
    *(49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99),
)


def _scaled_table_sum(quality: int) -> int:
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return sum(min(max((q * scale + 50) // 100, 1), 255) for q in _STANDARD_LUMINANCE)


def _jpeg_quality(image: Any) -> int | None:
    tables = getattr(image, "quantization", None)
    if not tables or 0 not in tables or len(tables[0]) != 64:
        return None
    total = sum(tables[0])
    return min(range(1, 101), key=lambda q: (abs(_scaled_table_sum(q) - total), -q))


# -- EXIF, IPTC, XMP -----------------------------------------------------------------------------

#: Pillow's tag names where ImageKit (ExifTool) names the tag otherwise.
_EXIF_NAMES: Final = {
    "DateTime": "ModifyDate",
    "DateTimeDigitized": "CreateDate",
    "ISOSpeedRatings": "ISO",
    "FocalLengthIn35mmFilm": "FocalLengthIn35mmFormat",
    "JpegIFOffset": "ThumbnailOffset",
    "JpegIFByteCount": "ThumbnailLength",
    "ExifInteroperabilityOffset": "InteropOffset",
    "ImageLength": "ImageHeight",
    "SubsecTime": "SubSecTime",
    "SubsecTimeOriginal": "SubSecTimeOriginal",
    "SubsecTimeDigitized": "SubSecTimeDigitized",
}
_INTEROP_NAMES: Final = {1: "InteropIndex", 2: "InteropVersion"}
#: Undefined-type tags that are text in ImageKit's answer although they are one byte.
_TEXT_BYTES: Final = frozenset({"SceneType", "FileSource"})
#: Tags kept as lists of numbers.
_BYTE_LISTS: Final = frozenset({"GPSVersionID"})
#: Pointers inside the file: in ``metadata.exif`` (as ImageKit has them), not embeddedMetadata.
_POINTERS: Final = frozenset(
    {"ExifOffset", "GPSInfo", "InteropOffset", "ThumbnailOffset", "ThumbnailLength"}
)


def _exif_value(name: str, value: object) -> object:
    """A JSON value for an EXIF value, or None to leave the tag out."""
    from PIL.TiffImagePlugin import IFDRational

    if isinstance(value, IFDRational):
        return None if value.denominator == 0 else float(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value if not isinstance(value, float) or math.isfinite(value) else None
    if isinstance(value, str):
        return value.rstrip("\x00").strip() or None
    if isinstance(value, bytes):
        return _exif_bytes(name, value)
    if isinstance(value, tuple):
        items = [_exif_value(name, v) for v in value]
        return items if items and None not in items else None
    return None


def _exif_bytes(name: str, value: bytes) -> object:
    if name in _BYTE_LISTS:
        return list(value)
    if name == "UserComment":  # an 8-byte character code, then the text
        code, text = value[:8], value[8:]
        encoding = "utf-16" if code.startswith(b"UNICODE") else "latin-1"
        return text.decode(encoding, "replace").rstrip("\x00").strip() or None
    if len(value) == 1 and not 0x20 <= value[0] < 0x7F:
        return str(value[0]) if name in _TEXT_BYTES else value[0]
    text = value.rstrip(b"\x00")
    if text and all(0x20 <= b < 0x7F for b in text):
        return text.decode("ascii")
    return None  # binary (maker notes, print matching...): left out


def _named(tags: Mapping[int, object], names: Mapping[int, str]) -> dict[str, Any]:
    group: dict[str, Any] = {}
    for tag, raw in tags.items():
        name = names.get(tag)
        if name is None or name == "MakerNote":
            continue
        name = _EXIF_NAMES.get(name, name)
        value = _exif_value(name, raw)
        if value is not None:
            group[name] = value
    return group


def _exif_groups(image: Any) -> dict[str, Any]:
    """ImageKit's ``metadata.exif``: ``image`` (IFD0), ``thumbnail`` (IFD1), ``exif``, ``gps``,
    ``interoperability``; ``makernote`` empty (maker notes are vendor binary)."""
    from PIL import ExifTags

    try:
        exif = image.getexif()
        if not exif:
            return {}
        image_tags = _named(exif, ExifTags.TAGS)
        groups = {
            "image": {k: v for k, v in image_tags.items() if k not in exiftool.LAYOUT},
            "thumbnail": _named(exif.get_ifd(ExifTags.IFD.IFD1), ExifTags.TAGS),
            "exif": _named(exif.get_ifd(ExifTags.IFD.Exif), ExifTags.TAGS),
            "gps": _named(exif.get_ifd(ExifTags.IFD.GPSInfo), ExifTags.GPSTAGS),
            "interoperability": _named(exif.get_ifd(ExifTags.IFD.Interop), _INTEROP_NAMES),
        }
    except (OSError, ValueError, TypeError, KeyError, SyntaxError, struct.error):
        return {}
    kept: dict[str, Any] = {name: group for name, group in groups.items() if group}
    if kept:
        kept["makernote"] = {}
    return kept


#: IPTC IIM record 2 datasets, by number, in ExifTool's names.
_IPTC_NAMES: Final = {
    5: "ObjectName",
    7: "EditStatus",
    10: "Urgency",
    15: "Category",
    20: "SupplementalCategories",
    25: "Keywords",
    40: "SpecialInstructions",
    55: "DateCreated",
    60: "TimeCreated",
    62: "DigitalCreationDate",
    63: "DigitalCreationTime",
    65: "OriginatingProgram",
    80: "By-line",
    85: "By-lineTitle",
    90: "City",
    92: "Sub-location",
    95: "Province-State",
    100: "Country-PrimaryLocationCode",
    101: "Country-PrimaryLocationName",
    103: "OriginalTransmissionReference",
    105: "Headline",
    110: "Credit",
    115: "Source",
    116: "CopyrightNotice",
    118: "Contact",
    120: "Caption-Abstract",
    122: "Writer-Editor",
}
_IPTC_LISTS: Final = frozenset({"Keywords", "SupplementalCategories"})


def _iptc(image: Any) -> dict[str, Any]:
    from PIL import IptcImagePlugin

    try:
        info = IptcImagePlugin.getiptcinfo(image) or {}
    except (OSError, ValueError, TypeError, SyntaxError, IndexError):
        return {}
    found: dict[str, Any] = {}
    for (record, dataset), raw in info.items():
        name = _IPTC_NAMES.get(dataset) if record == 2 else None
        if name is None:
            continue
        values = [
            v.decode("utf-8", "replace").strip() for v in (raw if isinstance(raw, list) else [raw])
        ]
        values = [v for v in values if v]
        if values:
            found[name] = values if name in _IPTC_LISTS or len(values) > 1 else values[0]
    return found


def _xmp_leaves(node: object) -> object:
    """An XMP property's value: text, or a list for rdf:Seq/Bag/Alt."""
    if isinstance(node, str):
        return node.strip() or None
    if isinstance(node, dict):
        for container in ("Seq", "Bag", "Alt"):
            if isinstance(node.get(container), dict):
                items = node[container].get("li")
                items = items if isinstance(items, list) else [items]
                texts = [_xmp_leaves(i) for i in items]
                texts = [t for t in texts if isinstance(t, str)]
                if not texts:
                    return None
                return texts[0] if container == "Alt" else texts
        text = node.get("text")
        return text.strip() if isinstance(text, str) and text.strip() else None
    return None


def _descriptions(xmp: object) -> Iterator[dict[str, Any]]:
    rdf = xmp.get("xmpmeta", {}).get("RDF", {}) if isinstance(xmp, dict) else {}
    descriptions = rdf.get("Description", []) if isinstance(rdf, dict) else []
    for description in descriptions if isinstance(descriptions, list) else [descriptions]:
        if isinstance(description, dict):
            yield description


def _xmp(image: Any) -> dict[str, Any]:
    try:
        xmp = image.getxmp()
    except (OSError, ValueError, TypeError, SyntaxError, AttributeError):
        return {}
    found: dict[str, Any] = {}
    for description in _descriptions(xmp):
        for raw_name, node in description.items():
            if raw_name == "about":
                continue
            value = _xmp_leaves(node)
            if value is not None:
                found[raw_name[:1].upper() + raw_name[1:]] = value
    return found


def _embedded(exif: Mapping[str, Any], image: Any) -> dict[str, Any]:
    """ImageKit's ``embeddedMetadata``: EXIF, IPTC and XMP in one flat object."""
    flat: dict[str, Any] = {}
    for group in ("image", "exif", "gps", "interoperability"):
        for name, value in exif.get(group, {}).items():
            if name not in _POINTERS:
                flat[name] = value
    flat.update(_iptc(image))
    for name, value in _xmp(image).items():
        flat.setdefault(name, value)
    return flat


# -- SVG -----------------------------------------------------------------------------------------

#: CSS pixels per unit (CSS Values 4).
_UNITS: Final = {"": 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "in": 96.0, "cm": 96 / 2.54}
_UNITS_MM: Final = {"mm": 96 / 25.4, "q": 96 / 101.6}
_LENGTH: Final = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def _svg_length(value: str | None) -> float | None:
    match = _LENGTH.match(value or "")
    if match is None:
        return None
    unit = match.group(2).lower()
    factor = _UNITS.get(unit) or _UNITS_MM.get(unit)
    return float(match.group(1)) * factor if factor else None


def _svg(path: Path) -> Probe:
    """Width and height of an SVG from its root's ``width``/``height`` (absolute units), else
    its ``viewBox``; read with defusedxml (no entities, no external references), and only the
    root element."""
    import xml.etree.ElementTree as ElementTree

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import iterparse

    try:
        root = next((element for _, element in iterparse(str(path), events=("start",))), None)
    except (ElementTree.ParseError, DefusedXmlException, OSError, ValueError):
        return {}
    if root is None or not root.tag.endswith("svg"):
        return {}
    width, height = _svg_length(root.get("width")), _svg_length(root.get("height"))
    box = [p for p in re.split(r"[\s,]+", root.get("viewBox", "").strip()) if p]
    if (width is None or height is None) and len(box) == 4:
        try:
            box_width, box_height = float(box[2]), float(box[3])
        except ValueError:
            box_width = box_height = 0.0
        if box_width > 0 and box_height > 0:
            if width is None and height is None:
                width, height = box_width, box_height
            elif width is None and height is not None:
                width = height * box_width / box_height
            elif height is None and width is not None:
                height = width * box_height / box_width
    if not width or not height or not (math.isfinite(width) and math.isfinite(height)):
        return {}
    w, h = max(1, round(width)), max(1, round(height))
    return {
        "width": w,
        "height": h,
        "metadata": {"width": w, "height": h, "format": "svg", "hasTransparency": True},
        "embeddedMetadata": {},
        "thumbnail": False,
    }


# -- video and audio -----------------------------------------------------------------------------


def _media(path: str, extension: str, *, video: bool) -> Probe:
    import av

    try:
        container = av.open(path, metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError):
        return {}
    with container:
        found: Probe = {}
        if container.duration is not None and container.duration > 0:
            found["duration"] = max(1, round(container.duration / av.time_base))
        if container.bit_rate:
            found["bitRate"] = round(container.bit_rate / 1000)
        picture = next(iter(container.streams.video), None)
        if picture is not None and video:
            context = picture.codec_context
            if context.codec.canonical_name:
                found["videoCodec"] = context.codec.canonical_name
            if context.width and context.height:
                found["width"], found["height"] = context.width, context.height
        sound = next(iter(container.streams.audio), None)
        if sound is not None and sound.codec_context.codec.canonical_name:
            # The codec's name (mp3), not its decoder's (mp3float).
            found["audioCodec"] = sound.codec_context.codec.canonical_name
        tags = {
            _camel(key): value
            for key, value in container.metadata.items()
            if isinstance(value, str) and value.strip()
        }
    metadata: dict[str, Any] = {"format": format_name(extension)}
    metadata.update(found)
    return {
        **found,
        "metadata": metadata,
        "embeddedMetadata": tags,
        "thumbnail": video and "width" in found,
    }


def _camel(key: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[_\s-]+", key) if part)


# -- a video's first frame (delivery renders it: app.upload_api.render) ------------------


def first_frame(path: str) -> Any:
    import av

    try:
        with av.open(path, metadata_errors="ignore") as container:
            for frame in container.decode(video=0):
                return frame.to_image()  # type: ignore[no-untyped-call]
    except (av.FFmpegError, OSError, ValueError, IndexError, StopIteration):
        return None
    return None
