"""The spool: where uploads are written while they arrive, on the replica's own disk, whatever
the storage behind it (a local directory or an object store).

Uploads stream into ``tmp/`` under the spool's root; the storage then publishes them (one link
or rename on the same disk, or one upload to the bucket) or removes them. Each process writes
into a folder of its own, ``tmp/proc-<id>/``, and holds an exclusive lock (``flock``) on the
folder's ``.lock`` for as long as it runs. The kernel drops the lock when the process dies,
however it dies, so a starting replica removes every folder whose lock it can take (a dead
process's half-written uploads) and never touches one whose lock is held (a live replica's
uploads in flight), on a local disk or a shared volume whose filesystem carries ``flock`` (NFS
does).
"""

import contextlib
import fcntl
import itertools
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

T = TypeVar("T")

_PROCESS_PREFIX: Final = "proc-"
_LOCK_NAME: Final = ".lock"
#: Flags of a new spool file: made here, never an existing one, not passed to children.
_NEW_FILE: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """All of ``data`` into ``fd`` (a file may take a write in parts); ``OSError`` when the
    disk refuses."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


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


class Spool:
    """The temporary area under ``root`` (``root/tmp``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        #: Where this process's uploads in flight go: ``tmp/`` until ``claim`` gives it a
        #: folder of its own.
        self.work = self.tmp
        self._lock: int | None = None
        #: Spool files are named by a counter (``upload-<pid>-<n>``): the name only has to be
        #: new in this folder, which ``O_EXCL`` checks, and needs no randomness (``mkstemp``'s
        #: six random letters, docs/performance.md, #34).
        self._names = itertools.count()

    def new_temp(self) -> tuple[int, Path]:
        """A new empty file in this process's temporary area, open for writing (its fd): the
        caller writes it, then publishes or removes it. ``OSError`` when the disk refuses."""
        return self._new_name(lambda path: os.open(path, _NEW_FILE, 0o600))

    def link(self, source: Path) -> Path:
        """A new name in this process's temporary area for the file at ``source`` (a hard
        link: the file stays whole whatever becomes of ``source``)."""
        return self._new_name(lambda path: os.link(source, path))[1]

    def _new_name(self, make: Callable[[str], T]) -> tuple[T, Path]:
        """``make`` run on a new name in this process's temporary area, and the name."""
        folder = str(self.work)
        while True:
            path = f"{folder}/upload-{os.getpid()}-{next(self._names)}"
            try:
                return make(path), Path(path)
            except FileExistsError:  # left by an earlier process of the same id in ``tmp/``
                continue

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

    def health(self, min_free: int) -> str | None:
        """Why the spool cannot take uploads now (free space under ``min_free``, or a write
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

    def leftovers(self) -> list[Path]:
        """Uploads in the temporary area (none once every upload has finished)."""
        return [p for p in self.tmp.rglob("*") if p.is_file() and p.name != _LOCK_NAME]
