"""What to upload: walk the paths, mirror the tree under the remote folder, and apply the
upload policy's types and size limits before anything is sent. Pure apart from reading the
directory tree."""

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from app.core.imagekit.rules import (
    PlanLimits,
    RuleError,
    check_file_name,
    format_size,
    normalise_folder,
)


@dataclass(frozen=True, slots=True)
class LocalFile:
    path: Path
    size: int
    mtime_ns: int
    folder: str  # remote folder, ImageKit's alphabet
    name: str

    @property
    def key(self) -> str:
        """The manifest's key: where the file goes."""
        return f"{self.folder.rstrip('/')}/{self.name}"


@dataclass(frozen=True, slots=True)
class Refused:
    path: Path
    reason: str


def remote_segment(name: str) -> str:
    """A local directory name as one remote folder segment (ImageKit's alphabet)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name) or "_"


def _files(root: Path) -> Iterator[tuple[Path, tuple[str, ...]]]:
    if root.is_file():
        yield root, ()
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path, path.relative_to(root).parts[:-1]


def walk(
    paths: Iterable[Path], folder: str, limits: PlanLimits, types: frozenset[str] | None = None
) -> tuple[list[LocalFile], list[Refused]]:
    """Every regular file under ``paths``, and the ones the policy refuses (with why)."""
    base = normalise_folder(folder)
    wanted: list[LocalFile] = []
    refused: list[Refused] = []
    for root in paths:
        for path, parts in _files(root):
            stat = path.stat()
            try:  # a tree deeper than ImageKit's folders, or a name too long, refuses its files
                remote = normalise_folder(base + "/" + "/".join(remote_segment(p) for p in parts))
                file_type = check_file_name(path.name)
            except RuleError as exc:
                refused.append(Refused(path, str(exc)))
                continue
            limit = limits.limit_for(file_type.kind)
            if types is not None and file_type.extension not in types:
                refused.append(Refused(path, f"'.{file_type.extension}' is not among --types"))
            elif stat.st_size > limit:
                refused.append(
                    Refused(
                        path, f"{format_size(stat.st_size)} is over the {format_size(limit)} limit"
                    )
                )
            elif stat.st_size == 0:
                refused.append(Refused(path, "the file is empty"))
            else:
                wanted.append(LocalFile(path, stat.st_size, stat.st_mtime_ns, remote, path.name))
    return wanted, refused
