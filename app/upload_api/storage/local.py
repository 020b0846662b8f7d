"""Files on a local directory (the default): written whole or not at all.

Layout under the root: ``files/<folder>/<name>`` holds the bytes; ``meta/<sha256 of the
path>.json`` the file's record (id, type, version, tags...), unless its bytes imply it
(``implied``: a default upload of a web image or a document is its file alone);
``thumbnails/<sha256 of the path>-<version>/`` what is derived from a version (renditions made
on first request; the folder goes with the version); ``tmp/`` the spool (uploads in flight,
``spool.Spool``). An upload is written to the spool (same filesystem), then one link or rename
publishes it (and one more its record): a reader sees the old file or the new one, never a
half-written one, and never a private file's bytes under a public record. Without overwrite,
the publishing is a hard link that fails if the name exists, so two racing uploads cannot
replace each other. Replicas share the directory (a ``ReadWriteMany`` volume) or each has its
own.
"""

import asyncio
import contextlib
import functools
import hashlib
import os
import shutil
import stat
from collections.abc import AsyncIterator
from email.utils import formatdate
from pathlib import Path
from typing import Final

from fastapi.responses import FileResponse
from starlette.responses import Response

from app.upload_api.storage.implied import implied_id, implied_record, implies
from app.upload_api.storage.records import (
    FileDetails,
    NameTaken,
    StoredFile,
    decode,
    encode,
    next_record,
    path_in,
    record_name,
    unique_name,
)
from app.upload_api.storage.spool import Spool, write_all

#: Files up to this size are served from one read; larger ones are streamed.
SMALL_FILE: Final = 256 * 1024
#: Records kept in memory after a read (``LocalStorage.record``).
RECORDS_KEPT: Final = 10_000
#: Folders whose content directory is kept (``_content_folder``).
_FOLDERS_KEPT: Final = 1024


@functools.lru_cache(maxsize=4096)
def _http_date(seconds: int) -> str:
    return formatdate(seconds, usegmt=True)


class LocalStorage:
    def __init__(self, root: Path, *, implied_records: bool = True) -> None:
        self.root = root
        #: Whether an upload whose record its bytes imply keeps no record file (``implied``);
        #: such files are read either way.
        self.implied_records = implied_records
        self.spool = Spool(root)
        self.files = root / "files"
        self.meta = root / "meta"
        self.thumbnails = root / "thumbnails"
        self._records: dict[str, tuple[tuple[object, ...], StoredFile | None]] = {}
        self._folders: dict[str, str] = {}
        for directory in (self.files, self.meta, self.thumbnails):
            directory.mkdir(parents=True, exist_ok=True)

    def new_temp(self) -> tuple[int, Path]:
        return self.spool.new_temp()

    async def start(self, stale_after: float) -> int:
        """Take this process's spool folder; remove what dead processes left (their count)."""
        self.spool.claim()
        return self.spool.sweep(older_than=stale_after)

    async def stop(self) -> None:
        self.spool.release()

    def leftovers(self) -> list[Path]:
        """Uploads in the spool (none once every upload has finished)."""
        return self.spool.leftovers()

    def _content_path(self, file_path: str) -> Path:
        return self.files.joinpath(*[p for p in file_path.split("/") if p])

    def _content_folder(self, folder: str) -> str:
        """Where the files of ``folder`` go, kept per folder (uploads go to a few)."""
        found = self._folders.get(folder)
        if found is None:
            if len(self._folders) >= _FOLDERS_KEPT:
                self._folders.clear()
            found = self._folders[folder] = str(self._content_path(folder))
        return found

    def _meta_path(self, file_path: str) -> Path:
        return self.meta / record_name(file_path)

    def record(self, file_path: str) -> StoredFile | None:
        """The record at ``file_path`` (None when there is none, or none readable). Records
        read before are kept while their file is the same one (inode, time and size: a record
        is only ever replaced by a rename), so serving a file asks the disk one ``stat``."""
        path = self._meta_path(file_path)
        try:
            status = os.stat(path)
        except FileNotFoundError:
            return self._implied(file_path)
        stamp = (status.st_ino, status.st_mtime_ns, status.st_size)
        seen = self._records.get(file_path)
        if seen is not None and seen[0] == stamp:
            return seen[1]
        try:
            found = decode(path.read_bytes())
        except FileNotFoundError:  # replaced meanwhile: read again
            return self.record(file_path)
        return self._keep(file_path, stamp, found)

    def _implied(self, file_path: str) -> StoredFile | None:
        """The record a file with no record file implies (``implied``), None when there is no
        file at ``file_path`` or its bytes do not tell its record."""
        parts = file_path.split("/")[1:]
        if not parts or any(p in ("", ".", "..") or "\x00" in p for p in parts):
            return None  # not a path an upload makes: never looked for outside files/
        content = self._content_path(file_path)
        try:
            status = os.stat(content)
        except OSError:  # none, a folder on the way is a file, a name too long...
            return None
        if not stat.S_ISREG(status.st_mode):
            return None
        stamp = ("implied", status.st_ino, status.st_mtime_ns, status.st_size)
        seen = self._records.get(file_path)
        if seen is not None and seen[0] == stamp:
            return seen[1]
        return self._keep(file_path, stamp, implied_record(file_path, content, status.st_size))

    def _keep(
        self, file_path: str, stamp: tuple[object, ...], found: StoredFile | None
    ) -> StoredFile | None:
        """``found`` kept in memory for ``file_path`` while its file is the same (``stamp``)."""
        if len(self._records) >= RECORDS_KEPT:
            del self._records[next(iter(self._records))]  # the oldest read
        self._records[file_path] = (stamp, found)
        return found

    async def lookup(self, file_path: str) -> StoredFile | None:
        return self.record(file_path)

    def content(self, stored: StoredFile) -> Path:
        return self._content_path(stored.file_path)

    def _derived_folder(self, file_path: str, version_id: str) -> Path:
        digest = hashlib.sha256(file_path.encode()).hexdigest()
        return self.thumbnails / f"{digest}-{version_id}"

    def derived_path(self, stored: StoredFile, name: str) -> Path:
        """Where ``name`` derived from this version of the file is kept: a folder per version,
        removed whole when the file gets a new version."""
        return self._derived_folder(stored.file_path, stored.version_id) / name

    async def has_derived(self, stored: StoredFile, name: str) -> bool:
        return self.derived_path(stored, name).exists()

    async def keep_derived(self, stored: StoredFile, name: str, made: Path) -> None:
        """Publish ``made`` (in the spool) as ``name`` of this version: one rename, never
        half-written."""
        kept = self.derived_path(stored, name)
        os.makedirs(kept.parent, exist_ok=True)
        os.replace(made, kept)

    async def trim_derived(self, limit: int) -> int:
        """Remove the oldest derived files past ``limit`` bytes in all; how many went."""
        return await asyncio.to_thread(self._trim_derived, limit)

    def _trim_derived(self, limit: int) -> int:
        found = []
        with os.scandir(self.thumbnails) as folders:
            for folder in folders:
                with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                    if not folder.is_dir():  # a thumbnail kept before folders per version
                        status = folder.stat()
                        found.append((status.st_mtime, status.st_size, folder.path))
                        continue
                    with os.scandir(folder.path) as entries:
                        for entry in entries:
                            status = entry.stat()
                            found.append((status.st_mtime, status.st_size, entry.path))
        found.sort(reverse=True)
        total, removed = 0, 0
        for _, size, path in found:
            total += size
            if total > limit:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                removed += 1
        return removed

    @contextlib.asynccontextmanager
    async def local_copy(self, stored: StoredFile) -> AsyncIterator[Path]:
        """The file's bytes on this disk, for a media worker to read: the file itself."""
        yield self.content(stored)

    def _served(self, stored: StoredFile, derived: str | None) -> Path:
        return self.content(stored) if derived is None else self.derived_path(stored, derived)

    async def modified(self, stored: StoredFile, derived: str | None = None) -> float | None:
        """When the file (or what was derived from it) was written, in Unix seconds."""
        try:
            return self._served(stored, derived).stat().st_mtime
        except OSError:
            return None

    async def respond(
        self,
        stored: StoredFile,
        *,
        derived: str | None,
        media_type: str,
        headers: dict[str, str],
        range_header: str | None,
        method: str = "GET",
    ) -> Response:
        """The file (Range, HEAD and ``Last-Modified`` by the framework). A small file asked
        whole (a rendition, a thumbnail, most images) is read at once on the event loop: a
        page-cache read of a few microseconds, where the framework's streaming hops to a
        thread four times (docs/performance.md, #32)."""
        served = self._served(stored, derived)
        if range_header is None:
            try:
                fd = os.open(served, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                pass  # the framework's answer for a file gone meanwhile
            else:
                try:
                    status = os.fstat(fd)
                    if status.st_size <= SMALL_FILE:
                        content = b"" if method == "HEAD" else os.read(fd, SMALL_FILE + 1)
                        headers = {
                            **headers,
                            "Content-Length": str(status.st_size),
                            "Last-Modified": _http_date(int(status.st_mtime)),
                            "Accept-Ranges": "bytes",
                        }
                        return Response(content, media_type=media_type, headers=headers)
                finally:
                    os.close(fd)
        return FileResponse(served, media_type=media_type, headers=headers)

    def _stage_meta(self, stored: StoredFile) -> Path:
        """The record written whole to the spool (where a full disk or an unserialisable value
        fails before anything is published); the caller renames it."""
        fd, tmp = self.new_temp()
        try:
            try:
                write_all(fd, encode(stored))
            finally:
                os.close(fd)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    async def commit(
        self,
        upload: Path,
        *,
        folder: str,
        name: str,
        unique: bool,
        overwrite: bool,
        details: FileDetails,
        head: bytes | None = None,
    ) -> StoredFile:
        """``publish``, on the event loop: a few system calls on the spool's own filesystem,
        which cost less there than a hop to a thread (docs/performance.md, #34)."""
        return self.publish(
            upload,
            folder=folder,
            name=name,
            unique=unique,
            overwrite=overwrite,
            details=details,
            head=head,
        )

    def publish(
        self,
        upload: Path,
        *,
        folder: str,
        name: str,
        unique: bool,
        overwrite: bool,
        details: FileDetails,
        head: bytes | None = None,
    ) -> StoredFile:
        """Publish an uploaded spool file at ``folder/name`` with what the upload knows of it
        (and, when the caller holds them, its first bytes: ``implied_details``'s ``head``);
        consumes ``upload``. Atomic: the file appears with its record or not at all. A
        uniquely named upload whose record its bytes imply (``implied``) is one link: its
        record is made again from the file when asked for. Any other has its record written
        whole first (``_with_record``)."""
        directory = self._content_folder(folder)
        try:
            for _ in range(8):
                final = unique_name(name) if unique else name
                file_path = path_in(folder, final)
                previous = None if unique or not overwrite else self.record(file_path)
                # a new path's ids follow from it
                version_id = implied_id(file_path) if unique else None
                stored = next_record(previous, file_path, final, details, version_id=version_id)
                implied = unique and self.implied_records and implies(upload, final, details, head)
                try:
                    if implied:
                        _publish(upload, directory, final, replace=False)
                    else:
                        self._with_record(
                            upload, directory, stored, replace=overwrite and not unique
                        )
                except FileExistsError:
                    if unique:
                        continue
                    raise NameTaken() from None
                if previous is not None:  # what was derived from the replaced version goes
                    shutil.rmtree(
                        self._derived_folder(file_path, previous.version_id), ignore_errors=True
                    )
                return stored
            raise NameTaken()  # pragma: no cover - eight random 9-character suffixes all taken
        finally:
            with contextlib.suppress(FileNotFoundError):
                upload.unlink()

    def _with_record(
        self, upload: Path, directory: str, stored: StoredFile, *, replace: bool
    ) -> None:
        """Publish ``upload`` as ``stored.name`` in ``directory`` with its record, written whole
        to the spool first (where a full disk or an unserialisable value fails before anything
        is published); then one link or rename publishes the bytes and one the record, neither
        of which needs space. Their order never shows a reader new bytes under a record looser
        than theirs, nor the bytes of a file with no record (which would read as the record
        they imply): a private file's record goes first, a public file's bytes.
        ``FileExistsError`` when the name is taken and not to be replaced."""
        staged = self._stage_meta(stored)
        meta = self._meta_path(stored.file_path)
        try:
            if not stored.is_private_file:
                _publish(upload, directory, stored.name, replace=replace)
                try:
                    os.replace(staged, meta)
                except BaseException:
                    if not replace:  # bytes without their record would read as implied
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(f"{directory}/{stored.name}")
                    raise
                return
            kept = None  # the record replaced, kept in the spool until the bytes are in place
            if replace:
                kept = self._set_aside(meta)
                os.replace(staged, meta)
            else:
                os.link(staged, meta)  # FileExistsError when the name has a record
            try:
                _publish(upload, directory, stored.name, replace=replace)
            except BaseException:
                if kept is not None:
                    os.replace(kept, meta)
                else:
                    meta.unlink(missing_ok=True)
                raise
            finally:
                if kept is not None:
                    kept.unlink(missing_ok=True)
        finally:
            staged.unlink(missing_ok=True)

    def _set_aside(self, meta: Path) -> Path | None:
        """A second name in the spool for the record at ``meta``; None when there is none."""
        try:
            return self.spool.link(meta)
        except FileNotFoundError:
            return None

    async def health(self, min_free: int) -> str | None:
        return self.spool.health(min_free)

    async def events_since(self, since_ms: int) -> list[StoredFile]:
        return await asyncio.to_thread(self._events_since, since_ms)

    def _events_since(self, since_ms: int) -> list[StoredFile]:
        """The stored files whose upload's event was made at ``since_ms`` or later (newest
        record first). Reads only the records written since then."""
        cutoff = since_ms / 1000 - 1  # a record is written after its event's moment
        recent: list[tuple[float, str]] = []
        with os.scandir(self.meta) as entries:
            for entry in entries:
                with contextlib.suppress(FileNotFoundError):
                    modified = entry.stat().st_mtime
                    if modified >= cutoff and entry.name.endswith(".json"):
                        recent.append((modified, entry.path))
        found = []
        for _, path in sorted(recent, reverse=True):
            try:
                stored = decode(Path(path).read_bytes())
            except FileNotFoundError:
                continue
            if (
                stored is not None
                and stored.event is not None
                and stored.event.get("at", 0) >= since_ms
            ):
                found.append(stored)
        return found


def _publish(upload: Path, directory: str, name: str, *, replace: bool) -> None:
    """``upload`` at ``directory/name``: renamed over what is there, or linked (which fails
    with ``FileExistsError`` if the name is taken). The folder is made when it is missing."""
    target = f"{directory}/{name}"
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
            os.makedirs(directory, exist_ok=True)
