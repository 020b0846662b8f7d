"""Files in an S3-compatible bucket (AWS S3, Cloudflare R2, MinIO, Ceph RGW, GCS's S3
interface), through obstore (Rust's object_store: a third of aiobotocore's CPU per request,
docs/performance.md). Uploads still arrive in the replica's spool; only accepted ones reach the
bucket, so replicas share nothing but the bucket.

Layout under the prefix:

- ``records/<sha256 of the path>.json``: the file's record, the commit point;
- ``objects/<version id>``: a version's bytes, written before its record and unreachable until a
  record names them;
- ``derived/<version id>/<name>``: what is derived from a version (its thumbnail);
- ``pending/<version id>``: a version between its bytes and its record, naming the record.

Publishing a version: its pending marker, its bytes (a multipart upload above the part size,
read from the spool file part by part: memory bounded whatever the size), then its record with
a condition: ``If-None-Match: *`` for a new path, ``If-Match`` on the record it replaces. The
store grants one of two racing writers; the other, for a unique name, takes another name; for
no overwrite, is refused (``NameTaken``); for overwrite, reads the new record and writes the
version after it. A reader sees one record or the next, and the bytes a record names are there.
Then, in the background, the marker and the replaced version's bytes and derived files go.

A process killed between its bytes and its record leaves the marker: a starting replica removes
the bytes of every marker older than the stale age whose record does not name them. A multipart
upload cut short is the store's to expire (a lifecycle rule, docs/deploy.md): S3 gives no way to
list them that this client has.
"""

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import timedelta
from email.utils import formatdate
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

import obstore
from obstore.exceptions import AlreadyExistsError, BaseError, NotFoundError, PreconditionError
from obstore.store import S3Store
from starlette.responses import RedirectResponse, Response, StreamingResponse

from app.core.imagekit.filetypes import ALLOWED
from app.core.logs import get_logger
from app.upload_api.storage.records import (
    FileDetails,
    NameTaken,
    StorageUnavailable,
    StoredFile,
    decode,
    encode,
    is_active_content,
    new_id,
    next_record,
    path_in,
    record_name,
    unique_name,
)
from app.upload_api.storage.spool import Spool, write_all

if TYPE_CHECKING:
    from obstore import Attributes, ObjectMeta, PutMode

log = get_logger("upload_api")

T = TypeVar("T")

#: Chunks streamed to a client or to the spool.
_READ_CHUNK: Final = 256 * 1024
#: An object that is not there (obstore raises the builtin for a read).
_MISSING: Final = (NotFoundError, FileNotFoundError)
#: Records read at once when the webhook refill scans the bucket.
_SCAN_CONCURRENCY: Final = 16


@dataclass(frozen=True, kw_only=True)
class BucketConfig:
    """Where the bucket is and how to reach it (``Settings``' ``s3_*``)."""

    bucket: str
    prefix: str = ""
    #: None: AWS's own endpoint for the region.
    endpoint: str | None = None
    region: str | None = None
    path_style: bool = True
    #: None: the AWS chain (environment, web identity, ECS, instance role).
    access_key_id: str | None = None
    secret_access_key: str | None = None
    #: Seconds for one request (a part of a multipart upload is one request).
    timeout: float = 30.0
    part_size: int = 8 * 1024 * 1024
    part_concurrency: int = 4
    #: "proxy": bytes through the upload API; "redirect": to a presigned URL after our checks.
    delivery: Literal["proxy", "redirect"] = "proxy"
    redirect_ttl: int = 300


def make_store(config: BucketConfig) -> S3Store:
    """The obstore client for ``config``: bounded time per request and few retries, so that a
    store that does not answer is a 503 within seconds, not minutes."""
    options: dict[str, Any] = {
        "timeout": timedelta(seconds=config.timeout),
        "connect_timeout": timedelta(seconds=min(5.0, config.timeout)),
    }
    settings: dict[str, Any] = {"virtual_hosted_style_request": not config.path_style}
    if config.endpoint is not None:
        options["allow_http"] = config.endpoint.startswith("http://")
        endpoint = config.endpoint.rstrip("/")
        if not config.path_style:  # the client wants the bucket in the endpoint's host then
            scheme, _, host = endpoint.partition("://")
            endpoint = f"{scheme}://{config.bucket}.{host}"
        settings["endpoint"] = endpoint
    if config.region is not None:
        settings["region"] = config.region
    if config.access_key_id is not None and config.secret_access_key is not None:
        settings["access_key_id"] = config.access_key_id
        settings["secret_access_key"] = config.secret_access_key
    return S3Store(
        config.bucket,
        prefix=config.prefix.strip("/") or None,
        client_options=options,  # type: ignore[arg-type]
        retry_config={
            "max_retries": 2,
            "retry_timeout": timedelta(seconds=config.timeout),
            "backoff": {"init_backoff": timedelta(milliseconds=100), "base": 2},
        },
        **settings,
    )


#: What the client raises when the store cannot answer (the callers' own cases aside).
_FAILURES: Final = (BaseError, OSError, TimeoutError)


def _unavailable(what: str, exc: BaseException) -> StorageUnavailable:
    """The store's trouble, with the error's kind and never its details."""
    return StorageUnavailable(f"the object store failed to {what} ({type(exc).__name__})")


async def _call(what: str, call: Awaitable[T]) -> T:
    """An object-store call whose failure (other than the ones the caller handles) is
    ``StorageUnavailable``."""
    try:
        return await call
    except (*_MISSING, AlreadyExistsError, PreconditionError):
        raise
    except _FAILURES as exc:
        raise _unavailable(what, exc) from exc


async def _chunks(what: str, stream: AsyncIterator[T]) -> AsyncIterator[T]:
    """A stream of the store's (an object's bytes, a listing's pages) whose failure midway is
    ``StorageUnavailable``, as for one call."""
    try:
        async for chunk in stream:
            yield chunk
    except _FAILURES as exc:
        raise _unavailable(what, exc) from exc


def _record_key(file_path: str) -> str:
    return "records/" + record_name(file_path)


def _object_key(version_id: str) -> str:
    return "objects/" + version_id


def _derived_key(version_id: str, name: str) -> str:
    return f"derived/{version_id}/{name}"


class ObjectStorage:
    def __init__(self, spool_root: Path, config: BucketConfig) -> None:
        self.spool = Spool(spool_root)
        self.config = config
        self.store = make_store(config)
        self._background: set[asyncio.Task[None]] = set()
        #: Keys to remove in the next batch (markers of published versions, replaced bytes).
        self._doomed: list[str] = []

    def new_temp(self) -> tuple[int, Path]:
        return self.spool.new_temp()

    def leftovers(self) -> list[Path]:
        return self.spool.leftovers()

    async def start(self, stale_after: float) -> int:
        """Take this process's spool folder; remove what dead processes left in the spool, and
        in the bucket the bytes of versions whose publishing they did not finish."""
        self.spool.claim()
        removed = self.spool.sweep(older_than=stale_after)
        try:
            removed += await self.sweep_pending(stale_after)
        except StorageUnavailable as exc:
            log.warning("the bucket's sweep is left for the next start", extra={"cause": str(exc)})
        return removed

    async def stop(self) -> None:
        """Finish the background clean-ups, then drop the client (before the interpreter's
        finalisation, which its runtime's threads do not survive cleanly)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        self.spool.release()
        del self.store

    async def sweep_pending(self, older_than: float) -> int:
        """Remove the bytes of every version left pending for longer than ``older_than``
        seconds whose record does not name them (a publisher that died); returns how many."""
        removed = 0
        async for meta in self._listed("pending/"):
            if time.time() - meta["last_modified"].timestamp() < older_than:
                continue
            version_id = meta["path"].rpartition("/")[2]
            if await self._unnamed(meta["path"], version_id):
                await self._delete_version(version_id)
                removed += 1
            await self._delete(meta["path"])
        return removed

    async def _listed(self, prefix: str) -> AsyncIterator["ObjectMeta"]:
        """Every object under ``prefix``, a page of a thousand at a time."""
        pages = obstore.list(self.store, prefix=prefix, chunk_size=1000)
        async for page in _chunks("list objects", pages):
            for meta in page:
                yield meta

    async def _unnamed(self, marker: str, version_id: str) -> bool:
        """Whether the version of a pending marker is named by no record (its record not
        written, or replaced since)."""
        try:
            found = await _call("read", obstore.get_async(self.store, marker))
            record_key = bytes(await _call("read", found.bytes_async())).decode()
        except _MISSING:
            return False  # its publisher finished meanwhile
        stored, _ = await self._read_record_key(record_key)
        return stored is None or stored.version_id != version_id

    # -- records ----------------------------------------------------------------------------

    async def _read_record_key(self, key: str) -> tuple[StoredFile | None, str | None]:
        try:
            found = await _call("read a record", obstore.get_async(self.store, key))
            doc = await _call("read a record", found.bytes_async())
        except _MISSING:
            return None, None
        stored = decode(bytes(doc))
        return (None, None) if stored is None else (stored, found.meta["e_tag"])

    async def _read_record(self, file_path: str) -> tuple[StoredFile | None, str | None]:
        stored, etag = await self._read_record_key(_record_key(file_path))
        if stored is not None and stored.file_path != file_path:
            return None, None
        return stored, etag

    async def lookup(self, file_path: str) -> StoredFile | None:
        return (await self._read_record(file_path))[0]

    # -- publishing --------------------------------------------------------------------------

    async def commit(
        self,
        upload: Path,
        *,
        folder: str,
        name: str,
        unique: bool,
        overwrite: bool,
        details: FileDetails,
        head: bytes | None = None,  # noqa: ARG002 - every record is written
    ) -> StoredFile:
        """Publish the spool file ``upload`` at ``folder/name`` (see the module's docstring);
        consumes ``upload``."""
        version_id = new_id()  # the bytes' key, whatever name the record ends up under
        written = False
        try:
            for _ in range(8):
                final = unique_name(name) if unique else name
                file_path = path_in(folder, final)
                previous, etag = None, None
                if not unique:
                    previous, etag = await self._read_record(file_path)
                    if previous is not None and not overwrite:
                        raise NameTaken()
                stored = next_record(previous, file_path, final, details, version_id=version_id)
                await self._put("mark an upload", "pending/" + version_id, _record_key(file_path))
                if not written:
                    await self._put_file(upload, _object_key(version_id), details)
                    written = True
                mode: PutMode = "create" if etag is None else {"e_tag": etag}
                try:
                    await self._put("write a record", _record_key(file_path), encode(stored), mode)
                except (AlreadyExistsError, PreconditionError):
                    if unique or overwrite:
                        continue  # another name; or the version after the one just written
                    raise NameTaken() from None
                self._later(self._settle(version_id, previous))
                return stored
            raise StorageUnavailable("the object store's record kept changing under eight writes")
        except BaseException:
            if written:
                self._later(self._forget(version_id))
            raise
        finally:
            _remove(upload)

    async def _put(
        self, what: str, key: str, data: bytes | str, mode: "PutMode" = "overwrite"
    ) -> None:
        body = data.encode() if isinstance(data, str) else data
        await _call(what, obstore.put_async(self.store, key, body, mode=mode))

    async def _put_file(self, path: Path, key: str, details: FileDetails) -> None:
        """The bytes, with the type the bucket answers with (redirect delivery); active content
        only ever as an attachment."""
        attributes: Attributes = {"Content-Type": details.content_type}
        file_type = ALLOWED.get(details.extension)
        if file_type is None or is_active_content(file_type):
            attributes["Content-Disposition"] = "attachment"
        await _call(
            "store the bytes",
            obstore.put_async(
                self.store,
                key,
                path,
                attributes=attributes,
                chunk_size=self.config.part_size,
                max_concurrency=self.config.part_concurrency,
            ),
        )

    def _later(self, work: Awaitable[None]) -> None:
        """Clean-up after the answer: never delays it; failures are logged, and what stays is
        the sweep's."""

        async def run() -> None:
            try:
                await work
            except Exception as exc:
                log.warning("a bucket clean-up is left for the sweep", extra={"cause": str(exc)})

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _settle(self, version_id: str, replaced: StoredFile | None) -> None:
        """After a version is published: its marker goes, and the version it replaced."""
        self._discard("pending/" + version_id)
        if replaced is not None:
            for key in await self._version_keys(replaced.version_id):
                self._discard(key)

    def _discard(self, key: str) -> None:
        """Remove ``key`` in the next batch: one DeleteObjects request for up to a thousand
        keys, a tenth of a second after the first, rather than a request per upload."""
        if not self._doomed:
            self._later(self._flush())
        self._doomed.append(key)

    async def _flush(self) -> None:
        await asyncio.sleep(0.1)
        while self._doomed:
            batch, self._doomed = self._doomed[:1000], self._doomed[1000:]
            await _call("remove objects", obstore.delete_async(self.store, batch))

    async def _forget(self, version_id: str) -> None:
        """A version whose record was never written: its bytes and marker go."""
        await self._delete(_object_key(version_id))
        await self._delete("pending/" + version_id)

    async def _version_keys(self, version_id: str) -> list[str]:
        """A version's keys: its bytes and what was derived from them."""
        keys = [_object_key(version_id)]
        async for meta in self._listed(f"derived/{version_id}/"):
            keys.append(meta["path"])
        return keys

    async def _delete_version(self, version_id: str) -> None:
        """Remove a version now (the sweep)."""
        for key in await self._version_keys(version_id):
            await self._delete(key)

    async def _delete(self, key: str) -> None:
        with contextlib.suppress(*_MISSING):
            await _call("remove an object", obstore.delete_async(self.store, key))

    # -- what is derived ---------------------------------------------------------------------

    async def has_derived(self, stored: StoredFile, name: str) -> bool:
        try:
            await _call(
                "read", obstore.head_async(self.store, _derived_key(stored.version_id, name))
            )
        except _MISSING:
            return False
        return True

    async def keep_derived(self, stored: StoredFile, name: str, made: Path) -> None:
        try:
            await _call(
                "keep a derived file",
                obstore.put_async(self.store, _derived_key(stored.version_id, name), made),
            )
        finally:
            _remove(made)

    @contextlib.asynccontextmanager
    async def local_copy(self, stored: StoredFile) -> AsyncIterator[Path]:
        """The version's bytes copied into the spool while the context lasts."""
        fd, path = self.spool.new_temp()
        try:
            try:
                found = await _call(
                    "read", obstore.get_async(self.store, _object_key(stored.version_id))
                )
                async for chunk in _chunks("read", found.stream(min_chunk_size=_READ_CHUNK)):
                    write_all(fd, memoryview(chunk))
            except _MISSING:
                raise StorageUnavailable("a record names bytes the bucket does not hold") from None
            finally:
                os.close(fd)
            yield path
        finally:
            _remove(path)

    # -- delivery ----------------------------------------------------------------------------

    async def trim_derived(self, limit: int) -> int:
        """Remove the oldest derived files past ``limit`` bytes in all; how many went."""
        found = [meta async for meta in self._listed("derived/")]
        found.sort(key=lambda meta: meta["last_modified"], reverse=True)
        total, removed = 0, 0
        for meta in found:
            total += meta["size"]
            if total > limit:
                self._discard(meta["path"])
                removed += 1
        return removed

    def _served_key(self, stored: StoredFile, derived: str | None) -> str:
        if derived is None:
            return _object_key(stored.version_id)
        return _derived_key(stored.version_id, derived)

    async def modified(self, stored: StoredFile, derived: str | None = None) -> float | None:
        try:
            meta = await _call(
                "read", obstore.head_async(self.store, self._served_key(stored, derived))
            )
        except _MISSING:
            return None
        return meta["last_modified"].timestamp()

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
        """The bytes streamed from the bucket (one range honoured, ``Last-Modified`` from the
        object), or, with redirect delivery, a redirect to a presigned URL (our checks done)."""
        key = self._served_key(stored, derived)
        if self.config.delivery == "redirect":
            url = await _call(
                "sign a URL",
                obstore.sign_async(
                    self.store, "GET", key, timedelta(seconds=self.config.redirect_ttl)
                ),
            )
            private = headers.get("Cache-Control", "").startswith("private")
            cache = (
                "private, no-store"
                if private
                else f"public, max-age={self.config.redirect_ttl // 2}"
            )
            return RedirectResponse(url, status_code=302, headers={"Cache-Control": cache})
        if method == "HEAD" or range_header is None:
            wanted: tuple[int, int] | None = None
        else:
            size = stored.size if derived is None else await self._size(key)
            asked = parse_range(range_header, size)
            if asked == "unsatisfiable":
                return Response(
                    status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"}
                )
            wanted = asked
        if method == "HEAD":
            meta = await self._head(key)
            return Response(
                status_code=200,
                media_type=media_type,
                headers={
                    **headers,
                    "Accept-Ranges": "bytes",
                    "Content-Length": str(meta["size"]),
                    "Last-Modified": formatdate(meta["last_modified"].timestamp(), usegmt=True),
                },
            )
        options: dict[str, Any] = {} if wanted is None else {"range": wanted}
        try:
            found = await _call("read", obstore.get_async(self.store, key, options=options))  # type: ignore[arg-type]
        except _MISSING:
            raise StorageUnavailable("a record names bytes the bucket does not hold") from None
        start, end = found.range
        total = found.meta["size"]
        sent = {
            **headers,
            "Accept-Ranges": "bytes",
            "Content-Length": str(end - start),
            "Last-Modified": formatdate(found.meta["last_modified"].timestamp(), usegmt=True),
        }
        status = 200
        if wanted is not None:
            status, sent["Content-Range"] = 206, f"bytes {start}-{end - 1}/{total}"
        return StreamingResponse(
            _as_bytes(found.stream(min_chunk_size=_READ_CHUNK)),
            status_code=status,
            media_type=media_type,
            headers=sent,
        )

    async def _head(self, key: str) -> Any:
        try:
            return await _call("read", obstore.head_async(self.store, key))
        except _MISSING:
            raise StorageUnavailable("a record names bytes the bucket does not hold") from None

    async def _size(self, key: str) -> int:
        return int((await self._head(key))["size"])

    # -- health and the webhook refill -------------------------------------------------------

    async def health(self, min_free: int) -> str | None:
        """The spool's health, then whether the bucket answers (a read of one key)."""
        trouble = self.spool.health(min_free)
        if trouble is not None:
            return trouble
        try:
            await _call("answer", obstore.head_async(self.store, "records/readiness-probe"))
        except _MISSING:
            pass
        except StorageUnavailable as exc:
            return str(exc)
        return None

    async def events_since(self, since_ms: int) -> list[StoredFile]:
        """The records written since ``since_ms`` whose event was made then or later (newest
        first): a listing of ``records/`` (S3 lists keys, not times, so it reads every key's
        metadata once) and a read of each recent record."""
        cutoff = since_ms / 1000 - 1
        recent: list[tuple[float, str]] = []
        async for meta in self._listed("records/"):
            when = meta["last_modified"].timestamp()
            if when >= cutoff:
                recent.append((when, meta["path"]))
        recent.sort(reverse=True)
        gate = asyncio.Semaphore(_SCAN_CONCURRENCY)

        async def read(key: str) -> StoredFile | None:
            async with gate:
                return (await self._read_record_key(key))[0]

        found = await asyncio.gather(*(read(key) for _, key in recent))
        return [
            stored
            for stored in found
            if stored is not None
            and stored.event is not None
            and stored.event.get("at", 0) >= since_ms
        ]


def _remove(path: Path) -> None:
    """A spool file removed, if still there (one system call on the replica's own disk)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


async def _as_bytes(stream: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    async for chunk in _chunks("read", stream):
        yield bytes(chunk)


def parse_range(header: str, size: int) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    """One byte range of a ``Range`` header as (start, end exclusive), None to send the whole
    (several ranges, or a header that cannot be read: RFC 9110 lets a server ignore them), or
    "unsatisfiable" (416)."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first == "":
            suffix = int(last)
            if suffix <= 0:
                return "unsatisfiable"
            return (max(0, size - suffix), size)
        start = int(first)
        end = size - 1 if last == "" else min(int(last), size - 1)
    except ValueError:
        return None
    if start < 0 or (last != "" and int(last) < start):
        return None
    if start >= size:
        return "unsatisfiable"
    return (start, end + 1)
