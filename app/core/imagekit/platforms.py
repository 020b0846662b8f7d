"""What the platforms call each file extension: MIME types from maintained, installed data.

Browsers report the type their platform's database gives a file (Chromium on Linux reads
freedesktop.org's shared-mime-info; other platforms and Python read their own tables), and a
file with no entry comes with an empty type. A declared type is believable for an extension
when any of these sources maps the extension to it:

- shared-mime-info's ``globs2`` (every type listing ``*.EXT``) and ``aliases`` (the other
  names of those types), from the directories ``XDG_DATA_DIRS`` names (Debian's package
  ``shared-mime-info``; the image installs it);
- Python's ``mimetypes`` (its own table and the system's ``/etc/mime.types``).

Read once, on first use; a source that is not installed contributes nothing.
"""

import mimetypes
import os
from collections import defaultdict
from functools import cache
from pathlib import Path


def _data_dirs() -> list[Path]:
    dirs = os.environ.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share"
    return [Path(d) / "mime" for d in dirs.split(":") if d]


def _read(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []


@cache
def _shared_mime_info() -> dict[str, frozenset[str]]:
    """Extension -> the types shared-mime-info gives it, with each type's aliases."""
    by_extension: defaultdict[str, set[str]] = defaultdict(set)
    others: defaultdict[str, set[str]] = defaultdict(set)  # a type -> its other names
    for directory in _data_dirs():
        for line in _read(directory / "aliases"):
            alias, _, canonical = line.strip().partition(" ")
            if canonical:
                others[canonical.lower()].add(alias.lower())
                others[alias.lower()].add(canonical.lower())
        for line in _read(directory / "globs2"):
            if line.startswith("#"):
                continue
            parts = line.split(":")
            if len(parts) < 3 or not parts[2].startswith("*."):
                continue
            extension = parts[2][2:].lower()
            if "*" in extension or "[" in extension:
                continue
            by_extension[extension].add(parts[1].lower())
    return {
        extension: frozenset(types | {o for t in types for o in others[t]})
        for extension, types in by_extension.items()
    }


@cache
def _python() -> dict[str, frozenset[str]]:
    table = mimetypes.MimeTypes()
    by_extension: defaultdict[str, set[str]] = defaultdict(set)
    for strict in (True, False):
        for suffix, mime in table.types_map[strict].items():
            by_extension[suffix.lstrip(".").lower()].add(mime.lower())
    return {extension: frozenset(types) for extension, types in by_extension.items()}


def types_for(extension: str) -> frozenset[str]:
    """Every MIME type an installed platform database gives files with this extension."""
    extension = extension.lower()
    return _shared_mime_info().get(extension, frozenset()) | _python().get(extension, frozenset())
