"""Where stored files live: a local directory (``local``, the default) or an S3-compatible
bucket (``objects``), behind one interface (``Storage``). Either way uploads arrive in the
replica's spool (``spool``) and are published only once accepted, each with its record
(``records``)."""

from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Protocol

from starlette.responses import Response

from app.upload_api.storage.local import LocalStorage
from app.upload_api.storage.records import (
    FileDetails,
    NameTaken,
    StorageUnavailable,
    StoredFile,
    details_of,
    is_active_content,
    new_id,
    unique_name,
)
from app.upload_api.storage.spool import Spool, write_all

__all__ = [
    "FileDetails",
    "LocalStorage",
    "NameTaken",
    "Spool",
    "Storage",
    "StorageUnavailable",
    "StoredFile",
    "details_of",
    "is_active_content",
    "new_id",
    "unique_name",
    "write_all",
]


class Storage(Protocol):
    """What the upload API needs of a storage. ``OSError`` (or the backend's own error, mapped
    by the backend to ``StorageUnavailable``) means the store refused: a 503, never a 500."""

    spool: Spool

    def new_temp(self) -> tuple[int, Path]:
        """A new spool file open for writing (``Spool.new_temp``)."""
        ...

    async def start(self, stale_after: float) -> int:
        """Claim this process's spool folder and sweep what dead processes left (a count)."""
        ...

    async def stop(self) -> None: ...

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
        """Publish the spool file ``upload`` at ``folder/name`` with its record, atomically;
        consumes ``upload``. ``head``: its first bytes (``detect.HEAD_BYTES``, all of a smaller
        file) when the caller holds them, so the storage need not read them again.
        ``NameTaken`` when the name is taken and may not be replaced."""
        ...

    async def lookup(self, file_path: str) -> StoredFile | None:
        """The record of the file at ``file_path``, None when there is none."""
        ...

    async def health(self, min_free: int) -> str | None:
        """Why no upload can be stored now (secret-free), else None."""
        ...

    async def events_since(self, since_ms: int) -> list[StoredFile]:
        """The stored files whose upload's event was made at ``since_ms`` or later."""
        ...

    def local_copy(self, stored: StoredFile) -> AbstractAsyncContextManager[Path]:
        """The file's bytes on this replica's disk while the context lasts."""
        ...

    async def has_derived(self, stored: StoredFile, name: str) -> bool:
        """Whether ``name`` (a thumbnail...) was derived from this version and kept."""
        ...

    async def keep_derived(self, stored: StoredFile, name: str, made: Path) -> None:
        """Keep the spool file ``made`` as ``name`` derived from this version; consumes it."""
        ...

    async def trim_derived(self, limit: int) -> int:
        """Remove the oldest derived files past ``limit`` bytes in all; how many went."""
        ...

    async def modified(self, stored: StoredFile, derived: str | None = None) -> float | None:
        """When the file (or what was derived from it) was written, in Unix seconds."""
        ...

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
        """The answer that delivers the file (or ``derived``) with ``headers``: its bytes
        (``range_header``'s one range honoured; none for HEAD), or a redirect to them."""
        ...
