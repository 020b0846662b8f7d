"""What the upload API keeps about each stored file (its record), whatever the storage: the
details an upload knows, and where and as which version it was stored."""

import hashlib
import json
import secrets
import string
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Final

from app.core.entropy import random16
from app.core.fastjson import dumps
from app.core.imagekit.filetypes import FileType
from app.upload_api.detect import charset_of
from app.upload_api.media import Probe

_ID_ALPHABET: Final = string.ascii_letters + string.digits + "_-"


@dataclass(frozen=True, kw_only=True)
class FileDetails:
    """What an upload knows about its file when it stores it."""

    size: int
    mime: str
    extension: str
    width: int | None = None
    height: int | None = None
    tags: list[str] | None = None
    custom_coordinates: str | None = None
    custom_metadata: dict[str, Any] | None = None
    description: str | None = None
    is_private_file: bool = False
    is_published: bool = True
    #: What the media workers read in the file (``media.Probe``); None for files not read.
    media: dict[str, Any] | None = None
    #: The upload's webhook event, enough to make it again (``report.EventNote``): kept with
    #: the file so an outbox that lost its data can be refilled from the storage.
    event: dict[str, Any] | None = None
    #: A text file's Unicode encoding (``detect.text_encoding``), served with it; None for
    #: other files, and for text in a single-byte encoding its bytes cannot name.
    charset: str | None = None

    @property
    def content_type(self) -> str:
        """What the file is served as: its MIME type, and a text file's charset when known."""
        return f"{self.mime}; charset={self.charset}" if self.charset else self.mime


def details_of(
    size: int, file_type: FileType, found: Probe, head: bytes, **given: Any
) -> FileDetails:
    """What an upload knows of its file: its size and type, what was read in it (``found``),
    a text file's charset (from ``head``, its first bytes), and what the upload ``given``
    (tags, custom metadata, privacy, its event...)."""
    return FileDetails(
        size=size,
        mime=file_type.mime,
        extension=file_type.extension,
        width=found.get("width"),
        height=found.get("height"),
        media=dict(found) or None,
        charset=charset_of(head) if file_type.text else None,
        **given,
    )


@dataclass(frozen=True, kw_only=True)
class StoredFile(FileDetails):
    """What the upload API remembers about a stored file (its record): the details, and where
    and as which version it was stored."""

    file_id: str
    name: str
    file_path: str
    version: int
    version_id: str
    extra: dict[str, Any] = field(default_factory=dict)


class NameTaken(Exception):
    """The path exists and neither overwriting nor a unique name is allowed."""


class StorageUnavailable(OSError):
    """The store did not answer or refused (unreachable, slow, throttled, denied): the upload
    is answered 503 with Retry-After, as for a full disk. The message is secret-free."""


def encode(stored: StoredFile) -> bytes:
    """A record as stored: JSON (orjson writes the dataclass)."""
    return dumps(stored, default=asdict)


def decode(doc: bytes | str) -> StoredFile | None:
    """A stored record read back; None for one that is not JSON or not a record. Keys this
    version does not know (a newer replica's, during a rolling update) are left out."""
    try:
        values = json.loads(doc)
        try:
            return StoredFile(**values)
        except TypeError:
            known = {f.name for f in fields(StoredFile)}
            return StoredFile(**{k: v for k, v in values.items() if k in known})
    except (ValueError, TypeError, AttributeError):
        return None


def new_id() -> str:
    """A 24-hex-digit id, shaped like ImageKit's file and version ids."""
    return secrets.token_hex(12)


def unique_name(name: str) -> str:
    """``name`` with ImageKit's random suffix: ``cat.png`` -> ``cat_iEyH1dQme.png``. Nine
    random bytes (the kernel's, fetched in blocks: ``entropy``), each picking one of the 64
    characters uniformly (256 is a multiple of 64)."""
    suffix = "".join(_ID_ALPHABET[byte & 63] for byte in random16()[:9])
    stem, dot, ext = name.rpartition(".")
    return f"{stem}_{suffix}.{ext}" if dot and stem else f"{name}_{suffix}"


def path_in(folder: str, name: str) -> str:
    """The file path of ``name`` in ``folder`` (``/`` or ``/a/b``)."""
    return (folder.rstrip("/") + "/" + name) if folder != "/" else "/" + name


def record_name(file_path: str) -> str:
    """The name of a path's record (a hash: any path, any length, one flat folder)."""
    return hashlib.sha256(file_path.encode()).hexdigest() + ".json"


#: The fields of ``FileDetails``, which a record has too.
_DETAILS: Final = tuple(f.name for f in fields(FileDetails))


def next_record(
    previous: StoredFile | None,
    file_path: str,
    name: str,
    details: FileDetails,
    *,
    version_id: str | None = None,
) -> StoredFile:
    """The record of the file about to be published at ``file_path``: version 1, or
    (overwriting ``previous``) its next version. ``version_id`` (new by default) is the new
    version's id, and the file's id too for version 1 (ImageKit's rule)."""
    version = previous.version + 1 if previous else 1
    version_id = version_id or new_id()
    return StoredFile(
        file_id=previous.file_id if previous else version_id,
        name=name,
        file_path=file_path,
        version=version,
        version_id=version_id,
        **{name: getattr(details, name) for name in _DETAILS},
    )


def is_active_content(file_type: FileType) -> bool:
    """Types a browser would run or render as a document: never shown inline."""
    return file_type.mime in _ACTIVE or file_type.text


_ACTIVE: Final = frozenset(
    {
        "text/html",
        "image/svg+xml",
        "text/javascript",
        "application/xml",
        "application/rss+xml",
        "application/x-shockwave-flash",
        "application/pdf",
        "application/postscript",
        "application/x-httpd-php",
    }
)
