"""The record a file implies: what its path and its bytes say of it, with nothing an upload
added. A uniquely named upload whose record would say no more (no tags, custom metadata,
description or coordinates, public, published, no webhook event, and nothing read in it that
the upload's own process cannot read again from its first bytes: a web image's size, or no
reading at all for documents and fonts) keeps no record file: its record is made again from
the file when it is asked for. One inode per such upload instead of two (docs/performance.md,
#34); the store is still only files that a copy (``rsync -a``, ``kubectl cp``) keeps.

The rule is checked, not assumed: the storage makes the implied record from the spool file
and keeps no record file only when it equals the record the upload would write
(``LocalStorage.publish``), so a file read back gives what its upload answered.
"""

import hashlib
import os
from pathlib import Path

from app.core.imagekit.filetypes import extension_of
from app.upload_api import dimensions
from app.upload_api.detect import HEAD_BYTES, detect
from app.upload_api.storage.records import FileDetails, StoredFile, details_of, next_record


def implied_id(file_path: str) -> str:
    """The file and version id of a uniquely named upload: 24 hex digits, as ImageKit's,
    from its path (whose random suffix makes it new)."""
    return hashlib.sha256(b"upload-auth implied\x00" + file_path.encode()).hexdigest()[:24]


def implies(content: Path, name: str, details: FileDetails, head: bytes | None = None) -> bool:
    """Whether the file at ``content``, stored as ``name``, implies ``details``: what its
    upload knows of it is what its bytes say (``head``: as for ``implied_details``)."""
    return implied_details(content, name, details.size, head) == details


def implied_record(file_path: str, content: Path, size: int) -> StoredFile | None:
    """The record the file at ``content`` (``size`` bytes, stored at ``file_path``) implies;
    None when its bytes cannot tell it here."""
    name = file_path.rpartition("/")[2]
    details = implied_details(content, name, size)
    if details is None:
        return None
    return next_record(None, file_path, name, details, version_id=implied_id(file_path))


def implied_details(
    content: Path, name: str, size: int, head: bytes | None = None
) -> FileDetails | None:
    """What the bytes of the file at ``content`` (``size`` bytes, named ``name``) say, as an
    upload with nothing given would know it; None when they cannot tell it here (a type not
    allowed, or a file only the media workers read). ``head``, the file's first ``HEAD_BYTES``
    (all of a smaller file) when the caller holds them, spares opening the file but for a JPEG
    whose frame header lies past them; without it the file is opened once."""
    if head is not None:
        return _details(content, name, size, head)
    try:
        fd = os.open(content, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return _details(fd, name, size, os.read(fd, HEAD_BYTES))
    except OSError:
        return None
    finally:
        os.close(fd)


def _details(file: Path | int, name: str, size: int, head: bytes) -> FileDetails | None:
    file_type = detect(head, extension_of(name))
    if file_type is None:
        return None
    found = dimensions.in_process(file, file_type, head)
    if found is None:
        return None
    return details_of(size, file_type, found, head)
