"""The resume manifest: one JSON line per uploaded file (path, size, checksum, fileId, url).

Lines are appended and flushed as each upload completes, so a run killed at any moment leaves a
manifest of exactly what finished (a torn last line is ignored); the file is fsynced when the
run ends. A rerun skips a file whose
remote path, size and SHA-256 match a line; a changed file is uploaded again.
"""

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from app.bulk.plan import LocalFile

_CHUNK = 1024 * 1024


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    path: str
    size: int
    mtime_ns: int
    sha256: str
    file_id: str
    url: str


class Manifest:
    """Uploaded files, one JSON line each, appended as they finish. Opened ``writable=False``
    (a dry run) it only reads: no file or folder is created."""

    def __init__(self, path: Path, *, writable: bool = True) -> None:
        self.path = path
        self.entries: dict[str, Entry] = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = Entry(**json.loads(line))
                except (ValueError, TypeError):
                    continue  # a line torn by a kill
                self.entries[entry.key] = entry
        self._out: IO[str] | None = None
        if writable:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._out = path.open("a", encoding="utf-8")

    def done(self, file: LocalFile) -> bool:
        """Whether this file, unchanged, was uploaded by an earlier run."""
        entry = self.entries.get(file.key)
        if entry is None or entry.size != file.size:
            return False
        if entry.mtime_ns == file.mtime_ns:
            return True
        return entry.sha256 == sha256_of(file.path)

    def record(self, file: LocalFile, sha256: str, result: dict[str, Any]) -> Entry:
        entry = Entry(
            file.key,
            str(file.path),
            file.size,
            file.mtime_ns,
            sha256,
            str(result.get("fileId", "")),
            str(result.get("url", "")),
        )
        self.entries[entry.key] = entry
        if self._out is None:
            raise RuntimeError("a read-only manifest records nothing")
        # Flushed to the OS at once: a killed process loses nothing. (fsync, which only guards
        # against the machine itself going down, is done once, at the end.)
        self._out.write(json.dumps(asdict(entry)) + "\n")
        self._out.flush()
        return entry

    def close(self) -> None:
        if self._out is None:
            return
        self._out.flush()
        os.fsync(self._out.fileno())
        self._out.close()
