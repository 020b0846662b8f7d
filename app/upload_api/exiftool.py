"""Embedded metadata as ExifTool reads it (ImageKit's ``embeddedMetadata`` follows ExifTool):
Debian's ``exiftool`` kept running in batch mode (``-stay_open``), one per media worker, so a
file costs a request on a pipe rather than a Perl start (with every tag table loaded when it
starts, so that an answer never depends on the files read before it).

Runs only in the media workers (``app.upload_api.media``): ExifTool parses untrusted files, so
it lives inside the worker's bounds. It inherits the worker's address-space limit, dies with
the worker (util-linux's ``setpriv --pdeathsig``: a worker killed for its time takes its
ExifTool along; set by ``setpriv`` rather than between fork and exec, which a worker's libvips
threads make unsafe), and a read that does not end is the worker's timeout. Without ExifTool
installed (a first run on a bare machine) the reader answers None and the upload API reads
metadata with its own libraries.

What is kept, as ``embeddedMetadata``: every tag ExifTool reports, by ExifTool's name (its own
choice among duplicates), with ExifTool's values (``-n``: numbers as numbers, no printed
conversions), except its System group (the server's path, file times and permissions of a
temporary file) and its own version, and the binary blobs it only describes ("(Binary data
...)"). As ``metadata.exif``: the EXIF tags by ImageKit's groups, typed as the SDKs declare.
"""

import atexit
import json
import math
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import IO, Any, Final

#: ExifTool's options for each file, two commands on one read: every tag (JSON, values
#: unconverted, names without groups: ExifTool resolves duplicates; the server-side groups left
#: out), then the EXIF and maker-note tags by their groups (``EXIF:IFD0:Make``), for
#: ``metadata.exif``. File names as UTF-8.
_EVERY_TAG: Final = ("-j", "-n", "-x", "System:all", "-x", "ExifTool:all")
_BY_GROUP: Final = ("-j", "-n", "-G0:1", "-EXIF:all", "-MakerNotes:all")
_NAMES: Final = ("-charset", "filename=utf8")
_READY: Final = b"{ready}\n"

#: ``metadata.exif``'s groups (ImageKit's legacy shape) by ExifTool's group names (family 0:1).
_GROUPS: Final = {
    "EXIF:IFD0": "image",
    "EXIF:IFD1": "thumbnail",
    "EXIF:ExifIFD": "exif",
    "EXIF:GPS": "gps",
    "EXIF:InteropIFD": "interoperability",
}

#: A TIFF's first directory also lays out its pixels: those tags are not metadata, and not in
#: ``metadata.exif.image``.
LAYOUT: Final = frozenset(
    {"NewSubfileType", "SubfileType", "ImageWidth", "ImageHeight", "BitsPerSample"}
    | {"Compression", "PhotometricInterpretation", "FillOrder", "StripOffsets"}
    | {"SamplesPerPixel", "RowsPerStrip", "StripByteCounts", "PlanarConfiguration", "Predictor"}
    | {"TileWidth", "TileLength", "TileOffsets", "TileByteCounts", "ExtraSamples", "SampleFormat"}
    | {"SubIFDs", "JPEGTables", "ColorMap", "TransferFunction"}
)

#: The type the SDKs declare for each field of ``metadata.exif`` (imagekitio's ``Metadata``
#: model, @imagekit/nodejs's ``Metadata`` type; tests/upload_api/test_exiftool.py holds this to
#: the Python model): ExifTool's value is given that type, or left out if it cannot be.
SDK_TYPES: Final[dict[str, dict[str, str]]] = {
    "image": {
        **dict.fromkeys(
            ("Artist", "Copyright", "ImageDescription", "Make", "Model", "ModifyDate", "Software"),
            "str",
        ),
        **dict.fromkeys(
            ("ExifOffset", "GPSInfo", "Orientation", "ResolutionUnit", "YCbCrPositioning"), "int"
        ),
        **dict.fromkeys(("XResolution", "YResolution"), "float"),
    },
    "thumbnail": {
        **dict.fromkeys(
            ("Compression", "ResolutionUnit", "ThumbnailLength", "ThumbnailOffset"), "int"
        ),
        **dict.fromkeys(("XResolution", "YResolution"), "float"),
    },
    "exif": {
        **dict.fromkeys(
            (
                "CreateDate",
                "DateTimeOriginal",
                "ExifVersion",
                "FlashpixVersion",
                "LensModel",
                "SceneType",
                "SubSecTime",
                "UserComment",
            ),
            "str",
        ),
        **dict.fromkeys(
            (
                "ColorSpace",
                "CustomRendered",
                "ExifImageHeight",
                "ExifImageWidth",
                "ExposureMode",
                "ExposureProgram",
                "Flash",
                "FocalLengthIn35mmFormat",
                "FocalPlaneResolutionUnit",
                "InteropOffset",
                "ISO",
                "LightSource",
                "MeteringMode",
                "SceneCaptureType",
                "SensingMethod",
                "WhiteBalance",
            ),
            "int",
        ),
        **dict.fromkeys(
            (
                "ApertureValue",
                "BrightnessValue",
                "ExposureCompensation",
                "ExposureTime",
                "FNumber",
                "FocalLength",
                "FocalPlaneXResolution",
                "FocalPlaneYResolution",
                "MaxApertureValue",
                "ShutterSpeedValue",
            ),
            "float",
        ),
    },
    "gps": {
        **dict.fromkeys(
            ("GPSDateStamp", "GPSImgDirectionRef", "GPSLatitudeRef", "GPSLongitudeRef"), "str"
        ),
        "GPSAltitudeRef": "int",
        **dict.fromkeys(("GPSAltitude", "GPSImgDirection"), "float"),
        **dict.fromkeys(("GPSLatitude", "GPSLongitude", "GPSTimeStamp"), "floats"),
        "GPSVersionID": "ints",
    },
    "interoperability": {"InteropIndex": "str", "InteropVersion": "str"},
}


#: The fields every SDK's types declare for each group (the narrowest, @imagekit/javascript's
#: ``UploadResponse``; tests/upload_api/test_exiftool.py reads them from its declarations). A
#: group sharing none of them is left out of ``metadata.exif`` (its tags stay in
#: ``embeddedMetadata``): TypeScript refuses an object that has no property of its type, as
#: ``gps`` without ``GPSVersionID`` (a phone's HEIC).
EVERY_SDK: Final[dict[str, frozenset[str]]] = {
    "image": frozenset(
        {"ExifOffset", "GPSInfo", "Make", "Model", "ModifyDate", "Orientation", "Software"}
        | {"ResolutionUnit", "XResolution", "YCbCrPositioning", "YResolution"}
    ),
    "thumbnail": frozenset(
        {"Compression", "ResolutionUnit", "ThumbnailLength", "ThumbnailOffset"}
        | {"XResolution", "YResolution"}
    ),
    "exif": frozenset(
        {"ApertureValue", "ColorSpace", "CreateDate", "CustomRendered", "DateTimeOriginal"}
        | {"ExifImageHeight", "ExifImageWidth", "ExifVersion", "ExposureCompensation"}
        | {"ExposureMode", "ExposureProgram", "ExposureTime", "Flash", "FlashpixVersion"}
        | {"FNumber", "FocalLength", "FocalPlaneResolutionUnit", "FocalPlaneXResolution"}
        | {"FocalPlaneYResolution", "InteropOffset", "ISO", "MeteringMode", "SceneCaptureType"}
        | {"ShutterSpeedValue", "SubSecTime", "WhiteBalance"}
    ),
    "gps": frozenset({"GPSVersionID"}),
    "interoperability": frozenset({"InteropIndex", "InteropVersion"}),
}


@dataclass(frozen=True)
class Found:
    """What ExifTool read in a file."""

    #: Every tag, flat: ``embeddedMetadata``.
    embedded: dict[str, Any]
    #: The EXIF tags in ImageKit's ``metadata.exif`` groups, typed as the SDKs declare.
    exif: dict[str, dict[str, Any]]


class ExifTool:
    """One ``exiftool -stay_open`` process, started on first use and again after a failure."""

    def __init__(self, program: str | None = None) -> None:
        self.program = program or shutil.which("exiftool")
        #: Killed when its parent (the worker) dies.
        setpriv = shutil.which("setpriv")
        self._prefix = [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []
        self._process: subprocess.Popen[bytes] | None = None

    def _started(self, program: str) -> subprocess.Popen[bytes] | None:
        """The running process, started (and its tag tables loaded) if need be."""
        if self._process is not None and self._process.poll() is None:
            return self._process
        process = subprocess.Popen(  # noqa: S603 - a fixed program, no shell
            [*self._prefix, program, "-stay_open", "True", "-@", "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"},
        )
        self._process = process
        # Every tag table loaded first (listing every tag loads them, about 0.5 s): ExifTool
        # loads tables as files need them and keeps them, and a loaded table can change which
        # source a composite tag is taken from (an MP3's year from ID3v2 rather than ID3v1),
        # so without this an answer would depend on the files read before it.
        try:
            if process.stdin is None or process.stdout is None:  # never: both are pipes
                raise OSError("no pipes")
            process.stdin.write(b"-list\n-execute\n")
            process.stdin.flush()
            if _until_ready(process.stdout) is None:
                raise OSError("ExifTool ended")
        except OSError:
            self.close()
            return None
        return process

    def read(self, path: str) -> Found | None:
        """The tags of ``path``; None when ExifTool is not installed or failed on it."""
        if self.program is None or "\n" in path:
            return None
        process = self._started(self.program)
        if process is None:
            return None
        stdin, stdout = process.stdin, process.stdout
        if stdin is None or stdout is None:  # never: both are pipes
            return None
        request = [*_EVERY_TAG, *_NAMES, path, "-execute", *_BY_GROUP, *_NAMES, path, "-execute"]
        try:
            stdin.write("\n".join([*request, ""]).encode())
            stdin.flush()
            every, grouped = _until_ready(stdout), _until_ready(stdout)
        except OSError:  # the process died: the next file starts another
            self.close()
            return None
        if every is None or grouped is None:
            self.close()
            return None
        embedded = _tags(every)
        if embedded is None:
            return None
        return Found(embedded, exif_groups(_tags(grouped) or {}))

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.stdin is not None:
                process.stdin.write(b"-stay_open\nFalse\n")
                process.stdin.close()
            process.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _tags(answer: bytes) -> dict[str, Any] | None:
    """One file's tags from ExifTool's JSON, without its name and the binary blobs."""
    try:
        found = json.loads(answer) if answer.strip() else []
    except ValueError:
        return None
    if not found or not isinstance(found[0], dict):
        return None
    return {
        name: value
        for name, value in found[0].items()
        if name != "SourceFile"
        and not (isinstance(value, str) and value.startswith("(Binary data "))
    }


def exif_groups(grouped: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """ImageKit's ``metadata.exif`` from ExifTool's tags by group (``EXIF:IFD0:Make``): image
    (without a TIFF's pixel layout), thumbnail, exif, gps, interoperability and makernote,
    each value of the type the SDKs declare for it (others as ExifTool gives them), a group
    with none of the fields every SDK declares left out (``EVERY_SDK``); empty when the file
    has no EXIF."""
    groups: dict[str, dict[str, Any]] = {}
    for key, value in grouped.items():
        family, _, name = key.rpartition(":")
        group = "makernote" if family.startswith("MakerNotes:") else _GROUPS.get(family)
        if group is None or (group == "image" and name in LAYOUT):
            continue
        kind = SDK_TYPES.get(group, {}).get(name)
        typed = value if kind is None else _typed(value, kind, name)
        if typed is not None:
            groups.setdefault(group, {})[name] = typed
    groups = {
        name: tags
        for name, tags in groups.items()
        if name not in EVERY_SDK or tags.keys() & EVERY_SDK[name]
    }
    if groups:
        groups.setdefault("makernote", {})
    return groups


def _typed(value: Any, kind: str, name: str) -> Any:
    """``value`` as ``kind`` (str, int, float, a list of ints or floats); None if it is not
    one. GPS coordinates (ExifTool's decimal degrees) become degrees, minutes and seconds, as
    EXIF stores them; a time stamp (``9:41:7``) its three numbers."""
    if kind == "str":
        return value if isinstance(value, str) else _plain(value)
    if kind in ("int", "float"):
        number = _number(value)
        if number is None or (kind == "int" and number != int(number)):
            return None
        return int(number) if kind == "int" else float(number)
    if name in ("GPSLatitude", "GPSLongitude"):
        degrees = _number(value)
        if degrees is None:
            return None
        whole = int(abs(degrees))
        minutes = int((abs(degrees) - whole) * 60)
        seconds = round(((abs(degrees) - whole) * 60 - minutes) * 60, 6)
        return [float(whole), float(minutes), seconds]
    parts = str(value).replace(":", " ").split()
    numbers = [n for n in (_number(part) for part in parts) if n is not None]
    if not numbers or len(numbers) != len(parts):
        return None
    if kind == "ints":
        return [int(n) for n in numbers] if all(n.is_integer() for n in numbers) else None
    return numbers


def _number(value: Any) -> float | None:
    """A finite number, or None: ExifTool writes a rational over zero as ``inf`` or
    ``undef``, which no SDK type (and no JSON number) holds."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value if isinstance(value, int | float) else str(value))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _plain(value: Any) -> str:
    """A number or list as text, as ExifTool prints it (``1``, not ``1.0``)."""
    if isinstance(value, list):
        return " ".join(_plain(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _until_ready(stdout: IO[bytes]) -> bytes | None:
    """What ExifTool wrote before its ``{ready}`` line; None if it ended first."""
    lines: list[bytes] = []
    while True:
        line = stdout.readline()
        if not line:
            return None
        if line == _READY:
            return b"".join(lines)
        lines.append(line)


#: This process's ExifTool (a media worker's), stopped when the process exits.
_READER = ExifTool()
atexit.register(_READER.close)


def read(path: str, extension: str) -> Found | None:
    """What ExifTool reads in ``path``, a file of this (canonical) extension; None without
    ExifTool. ExifTool types a file partly by its name (a DNG or an ARW is TIFF inside), so a
    file stored without it is read through a link that has it."""
    if _READER.program is None:
        return None
    if path.endswith(f".{extension}"):
        return _READER.read(path)
    named = f"{path}.{extension}"
    try:
        os.link(path, named)
    except OSError:  # no link here (a read-only or foreign file system): read it as it is
        return _READER.read(path)
    try:
        return _READER.read(named)
    finally:
        os.unlink(named)
