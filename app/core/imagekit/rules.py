"""ImageKit's upload rules: sizes, plan limits, file names, folders and tags.

Pure: no I/O, no framework, no HTTP. A value that breaks a rule raises a ``RuleError`` whose
message says why in words safe to show anyone (never the value itself). The credential
service, the upload API and the bulk uploader each translate these at their own edge: into a
problem document, into ImageKit's error body, into a line of the uploader's report.
"""

import re
import unicodedata
from dataclasses import dataclass
from typing import Final

from app.core.imagekit.filetypes import ALLOWED, FileType, Kind, extension_of

KIB: Final = 1024
MIB: Final = 1024 * KIB
GIB: Final = 1024 * MIB
_UNITS: Final = {"": 1, "b": 1, "kb": KIB, "mb": MIB, "gb": GIB}
_SIZE_RE: Final = re.compile(r"^\s*(\d+)\s*([kmg]?b?)\s*$", re.IGNORECASE | re.ASCII)

MAX_FILE_NAME_LENGTH: Final = 255
MAX_FOLDER_LENGTH: Final = 1024
MAX_FOLDER_DEPTH: Final = 50  # ImageKit's nesting limit
MAX_FOLDER_NAME: Final = 255  # one folder's name: what a file system takes (NAME_MAX)
MAX_TAGS_LENGTH: Final = 500  # all tags together, comma-joined
MAX_STORED_NAME_BYTES: Final = 200  # a stored name, in UTF-8 (room for the unique suffix)
_FOLDER_RE: Final = re.compile(r"^[A-Za-z0-9/_-]*$")
#: An extension is repeated in a refusal only when it is this plain (never arbitrary input).
_SHOWN_EXTENSION_RE: Final = re.compile(r"[a-z0-9]{1,16}")
# Bidi overrides, zero-width characters and the like are format characters (Cf); control,
# surrogate, private-use and unassigned code points are refused with them.
_BAD_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


class RuleError(ValueError):
    """A value ImageKit's rules refuse; the message is safe to show."""


class BadFileName(RuleError):
    """The file name is empty, too long, a path, or has invisible characters or no extension."""


class UnknownType(RuleError):
    """The extension is not among ImageKit's allowed upload types."""


class BadFolder(RuleError):
    """The folder has characters outside ImageKit's alphabet, or is too long or too deep."""


class BadTags(RuleError):
    """The tags have a ``%`` or are too long together."""


# -- sizes ------------------------------------------------------------------------------------


def parse_size(value: int | str) -> int:
    """Bytes from an int or a string such as ``"25mb"`` (binary units: 1mb = 1,048,576)."""
    if isinstance(value, int):
        if value < 0:
            raise ValueError("size must not be negative")
        return value
    match = _SIZE_RE.match(value)
    if not match:
        raise ValueError("size must be bytes or a number with kb, mb or gb")
    number, unit = match.groups()
    unit = unit.lower()
    if unit and not unit.endswith("b"):
        unit += "b"
    return int(number) * _UNITS[unit]


def format_size(size: int) -> str:
    """A byte count for people: ``512 bytes``, ``1.5 KiB``, ``25 MiB``, ``31.2 MiB``."""
    if size < KIB:
        return f"{size} bytes"
    for unit, factor in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if size >= factor:
            value = size / factor
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class PlanLimits:
    """The upload API's size limits for an account plan (the seed: 25 MB; 300 MB for video)."""

    max_size: int
    max_video_size: int

    @classmethod
    def for_plan(cls, plan: str) -> "PlanLimits":
        if plan == "free":
            return cls(25 * MIB, 25 * MIB)
        if plan == "paid":
            return cls(25 * MIB, 300 * MIB)
        raise ValueError(f"unknown plan {plan!r}")

    def limit_for(self, kind: Kind) -> int:
        return self.max_video_size if kind is Kind.VIDEO else self.max_size


# -- names, folders, tags ---------------------------------------------------------------------


def check_file_name(name: str) -> FileType:
    """The allowed file type a file name's extension names; BadFileName or UnknownType."""
    if not name or len(name) > MAX_FILE_NAME_LENGTH:
        raise BadFileName(f"fileName must be 1 to {MAX_FILE_NAME_LENGTH} characters")
    if "/" in name or "\\" in name or ".." in name:
        raise BadFileName("fileName must not contain '/', '\\' or '..'")
    if name != name.strip() or (
        # printable ASCII has none of the bad categories: most names skip the walk
        not (name.isascii() and name.isprintable())
        and any(unicodedata.category(c) in _BAD_CATEGORIES for c in name)
    ):
        raise BadFileName(
            "fileName must not contain control or invisible characters, "
            "nor start or end with whitespace"
        )
    extension = extension_of(name)
    if extension is None:
        raise BadFileName("fileName must have a name and an extension")
    file_type = ALLOWED.get(extension)
    if file_type is None:
        shown = f"'.{extension}'" if _SHOWN_EXTENSION_RE.fullmatch(extension) else "this extension"
        raise UnknownType(
            f"{shown} is not an allowed upload type: the {len(ALLOWED)} allowed types are listed "
            "in upload-auth's docs/api.md (Allowed file types)"
        )
    return file_type


def normalise_folder(folder: str) -> str:
    """A folder path in canonical form (``/a/b``, root ``/``), or BadFolder."""
    if len(folder) > MAX_FOLDER_LENGTH or not _FOLDER_RE.match(folder):
        raise BadFolder("folder may only contain a-z A-Z 0-9 / _ -")
    segments = [s for s in folder.split("/") if s]
    if len(segments) > MAX_FOLDER_DEPTH:
        raise BadFolder(f"folder may be at most {MAX_FOLDER_DEPTH} levels deep")
    if any(len(segment) > MAX_FOLDER_NAME for segment in segments):
        raise BadFolder(f"folder names may be at most {MAX_FOLDER_NAME} characters")
    return "/" + "/".join(segments)


def is_within(folder: str, base: str) -> bool:
    """Whether a normalised folder is ``base`` or lies below it."""
    return base == "/" or folder == base or folder.startswith(base + "/")


def check_tags(joined: str) -> str:
    """Comma-joined tags as they may be stored; BadTags otherwise."""
    if "%" in joined or len(joined) > MAX_TAGS_LENGTH:
        raise BadTags(f"tags must not contain '%' and total at most {MAX_TAGS_LENGTH} characters")
    return joined


_NOT_KEPT_ASCII: Final = re.compile(r"[^A-Za-z0-9._-]")


def clean_name(name: str) -> str:
    """The name a file is stored under, by ImageKit's rule: letters, marks, digits, '.', '-'
    and '_' stay, anything else becomes '_'; leading dots too; at most 200 bytes."""
    if name.isascii():  # the letters and digits are A-Z, a-z and 0-9 (a regex, 10x faster)
        cleaned = _NOT_KEPT_ASCII.sub("_", name)
    else:
        name = unicodedata.normalize("NFC", name)
        cleaned = "".join(
            c if c in ".-_" or unicodedata.category(c)[0] in "LMN" else "_" for c in name
        )
    cleaned = re.sub(r"^\.+", lambda m: "_" * len(m.group()), cleaned)
    stem, dot, ext = cleaned.rpartition(".")
    if not dot:
        stem, ext = cleaned, ""
    while len(cleaned.encode()) > MAX_STORED_NAME_BYTES and stem:
        stem = stem[:-1]
        cleaned = f"{stem}.{ext}" if dot else stem
    return cleaned or "_"
