"""Files on a local directory: written whole or not at all.

Layout under the root: ``files/<folder>/<name>`` holds the bytes, ``meta/<sha256 of the path>.json``
what the upload API knows about them (id, type, version, tags...), ``thumbnails/`` their
thumbnails (made on first request, for the current version), ``tmp/`` the uploads in flight.
Uploads stream into ``tmp/`` (same filesystem), then one rename publishes them: a reader sees
the old file or the new one, never a half-written one. Without overwrite, the rename is a hard
link that fails if the name exists, so two racing uploads cannot replace each other.

Each process writes its uploads in flight into a folder of its own, ``tmp/proc-<id>/``, and
holds an exclusive lock (``flock``) on the folder's ``.lock`` for as long as it runs. The kernel
drops the lock when the process dies, however it dies, so a starting replica removes every
folder whose lock it can take (a dead process's half-written uploads) and never touches one
whose lock is held (a live replica's uploads in flight), on a local disk or a shared volume
whose filesystem carries ``flock`` (NFS does).
"""

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import string
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Final

from app.core.fastjson import dumps
from app.core.imagekit.filetypes import FileType

_ID_ALPHABET: Final = string.ascii_letters + string.digits + "_-"
_MAX_NAME_BYTES: Final = 200


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


@dataclass(frozen=True, kw_only=True)
class StoredFile(FileDetails):
    """What the upload API remembers about a stored file (its metadata document): the details,
    and where and as which version it was stored."""

    file_id: str
    name: str
    file_path: str
    version: int
    version_id: str
    extra: dict[str, Any] = field(default_factory=dict)


def new_id() -> str:
    """A 24-hex-digit id, shaped like ImageKit's file and version ids."""
    return secrets.token_hex(12)


def unique_name(name: str) -> str:
    """``name`` with ImageKit's random suffix: ``cat.png`` -> ``cat_iEyH1dQme.png``. Nine
    random bytes, each picking one of the 64 characters uniformly (256 is a multiple of 64)."""
    suffix = "".join(_ID_ALPHABET[byte & 63] for byte in secrets.token_bytes(9))
    stem, dot, ext = name.rpartition(".")
    return f"{stem}_{suffix}.{ext}" if dot and stem else f"{name}_{suffix}"


def write_all(fd: int, data: bytes | bytearray) -> None:
    """All of ``data`` into ``fd`` (a file may take a write in parts); ``OSError`` when the
    disk refuses."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class NameTaken(Exception):
    """The path exists and neither overwriting nor a unique name is allowed."""


_PROCESS_PREFIX: Final = "proc-"
_LOCK_NAME: Final = ".lock"


def _try_lock(folder: Path) -> int | None:
    """An exclusive lock on a process folder's lock file (its fd), or None while it is held."""
    try:
        fd = os.open(folder / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError:  # the folder went away meanwhile
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = root / "files"
        self.meta = root / "meta"
        self.tmp = root / "tmp"
        self.thumbnails = root / "thumbnails"
        for directory in (self.files, self.meta, self.tmp, self.thumbnails):
            directory.mkdir(parents=True, exist_ok=True)
        #: Where this process's uploads in flight go: ``tmp/`` until ``claim`` gives it a
        #: folder of its own.
        self.work = self.tmp
        self._lock: int | None = None

    def new_temp(self) -> tuple[int, Path]:
        """A new empty file in this process's temporary area, open for writing (its fd): the
        caller writes it, then publishes or removes it. ``OSError`` when the disk refuses."""
        fd, name = tempfile.mkstemp(dir=self.work, prefix="upload-")
        return fd, Path(name)

    def claim(self) -> None:
        """Take a temporary folder of this process's own, locked while the process lives."""
        if self._lock is not None:
            return
        folder = Path(tempfile.mkdtemp(dir=self.tmp, prefix=_PROCESS_PREFIX))
        fd = _try_lock(folder)
        if fd is None:  # pragma: no cover - a folder just made is nobody else's
            raise RuntimeError("cannot lock a new temporary folder")
        self.work, self._lock = folder, fd

    def release(self) -> None:
        """Remove this process's temporary folder (at shutdown, once nothing is in flight)."""
        if self._lock is None:
            return
        shutil.rmtree(self.work, ignore_errors=True)
        os.close(self._lock)
        self.work, self._lock = self.tmp, None

    def sweep_dead(self) -> int:
        """Remove the temporary folders of processes that died (their locks are free); returns
        how many uploads in flight they held."""
        removed = 0
        for folder in self.tmp.glob(_PROCESS_PREFIX + "*"):
            if folder == self.work or not folder.is_dir():
                continue
            fd = _try_lock(folder)
            if fd is None:  # alive: its lock is held
                continue
            try:
                removed += sum(1 for p in folder.iterdir() if p.name != _LOCK_NAME)
                shutil.rmtree(folder, ignore_errors=True)
            finally:
                os.close(fd)
        return removed

    def _content_path(self, file_path: str) -> Path:
        return self.files.joinpath(*[p for p in file_path.split("/") if p])

    def _meta_path(self, file_path: str) -> Path:
        return self.meta / (hashlib.sha256(file_path.encode()).hexdigest() + ".json")

    def lookup(self, file_path: str) -> StoredFile | None:
        try:
            doc = json.loads(self._meta_path(file_path).read_text())
        except (FileNotFoundError, ValueError):
            return None
        return StoredFile(**doc)

    def content(self, stored: StoredFile) -> Path:
        return self._content_path(stored.file_path)

    def thumbnail_path(self, stored: StoredFile) -> Path:
        """Where the thumbnail of this version of the file is kept (made on first request)."""
        digest = hashlib.sha256(stored.file_path.encode()).hexdigest()
        return self.thumbnails / f"{digest}-{stored.version_id}.webp"

    def keep_thumbnail(self, made: Path, kept: Path) -> None:
        """Publish a thumbnail made in the temporary area (one rename: never half-written); the
        file's earlier versions' thumbnails go."""
        os.replace(made, kept)
        digest = kept.name.partition("-")[0]
        for earlier in self.thumbnails.glob(digest + "-*"):
            if earlier != kept:
                earlier.unlink(missing_ok=True)

    def _stage_meta(self, stored: StoredFile) -> Path:
        """The metadata document written whole to the temporary area (where a full disk or an
        unserialisable value fails before anything is published); the caller renames it."""
        fd, tmp = self.new_temp()
        try:
            try:
                write_all(fd, dumps(stored, default=asdict))  # orjson writes dataclasses
            finally:
                os.close(fd)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def commit(
        self,
        upload: Path,
        *,
        folder: str,
        name: str,
        unique: bool,
        overwrite: bool,
        details: FileDetails,
    ) -> StoredFile:
        """Publish an uploaded temporary file at ``folder/name`` with what the upload knows of
        it; consumes ``upload``. Atomic: the file appears with its metadata or not at all. The
        metadata is written first, whole, beside the upload; then one link (or rename) publishes
        the bytes and one rename the metadata, neither of which needs space."""
        directory = self._content_path(folder)
        try:
            for _ in range(8):
                final = unique_name(name) if unique else name
                file_path = (folder.rstrip("/") + "/" + final) if folder != "/" else "/" + final
                stored = self._next_version(file_path, final, details, unique or not overwrite)
                staged = self._stage_meta(stored)
                try:
                    _publish(upload, directory, final, replace=overwrite and not unique)
                except FileExistsError:
                    staged.unlink(missing_ok=True)
                    if unique:
                        continue
                    raise NameTaken() from None
                except BaseException:
                    staged.unlink(missing_ok=True)
                    raise
                os.replace(staged, self._meta_path(file_path))
                return stored
            raise NameTaken()  # pragma: no cover - eight random 9-character suffixes all taken
        finally:
            with contextlib.suppress(FileNotFoundError):
                upload.unlink()

    def _next_version(
        self, file_path: str, name: str, details: FileDetails, new_file: bool
    ) -> StoredFile:
        """The record of the file about to be published at ``file_path``: version 1 with a new
        id, or (overwriting) the next version of the file there."""
        previous = None if new_file else self.lookup(file_path)
        version = previous.version + 1 if previous else 1
        file_id = previous.file_id if previous else new_id()
        return StoredFile(
            file_id=file_id,
            name=name,
            file_path=file_path,
            version=version,
            version_id=file_id if version == 1 else new_id(),
            **{f.name: getattr(details, f.name) for f in fields(FileDetails)},
        )

    def health(self, min_free: int) -> str | None:
        """Why the storage cannot take uploads now (free space under ``min_free``, or a write
        refused), else None. A write probe of one small file in this process's folder."""
        try:
            free = shutil.disk_usage(self.root).free
            if free < min_free:
                return f"the storage has {free // (1024 * 1024)} MiB free (under the minimum)"
            fd, probe = self.new_temp()
            try:
                os.write(fd, b"ready")
            finally:
                os.close(fd)
                probe.unlink()
        except OSError as exc:
            return f"the storage refuses writes ({exc.strerror or type(exc).__name__})"
        return None

    def events_since(self, since_ms: int) -> Iterator[StoredFile]:
        """The stored files whose upload's event was made at ``since_ms`` or later (newest
        metadata first). Reads only the metadata documents written since then."""
        cutoff = since_ms / 1000 - 1  # a document is written after its event's moment
        recent: list[tuple[float, str]] = []
        with os.scandir(self.meta) as entries:
            for entry in entries:
                with contextlib.suppress(FileNotFoundError):
                    modified = entry.stat().st_mtime
                    if modified >= cutoff and entry.name.endswith(".json"):
                        recent.append((modified, entry.path))
        for _, path in sorted(recent, reverse=True):
            try:
                stored = StoredFile(**json.loads(Path(path).read_text()))
            except (FileNotFoundError, ValueError, TypeError):
                continue
            if stored.event is not None and stored.event.get("at", 0) >= since_ms:
                yield stored

    def sweep(self, older_than: float) -> int:
        """Remove uploads left directly in ``tmp/`` (by versions before process folders) once
        they are old, and the folders of dead processes."""
        cutoff = time.time() - older_than
        removed = 0
        for path in self.tmp.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed + self.sweep_dead()

    def leftovers(self) -> list[Path]:
        """Uploads in the temporary area (none once every upload has finished)."""
        return [p for p in self.tmp.rglob("*") if p.is_file() and p.name != _LOCK_NAME]


def _publish(upload: Path, directory: Path, name: str, *, replace: bool) -> None:
    """``upload`` at ``directory/name``: renamed over what is there, or linked (which fails
    with ``FileExistsError`` if the name is taken). The folder is made when it is missing."""
    target = directory / name
    for attempt in range(2):
        try:
            if replace:
                os.replace(upload, target)
            else:
                os.link(upload, target)
            return
        except FileNotFoundError:
            if attempt or not upload.exists():
                raise
            directory.mkdir(parents=True, exist_ok=True)


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
