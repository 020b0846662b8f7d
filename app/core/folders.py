"""Folder templates: a profile's folder with ``{caller}`` in it, rendered for each caller.

Pure. The settings check a template at start-up; the policy renders it per caller, so each caller
writes (and reads) a folder of its own that no other caller id can be written to name.
"""

import hashlib
import re
from functools import lru_cache
from typing import Final

from app.core.imagekit.rules import normalise_folder

_HASHED_SUFFIX_RE: Final = re.compile(r"_[0-9a-f]{16}$")
CALLER_PLACEHOLDER: Final = "{caller}"


def caller_segment(caller: str) -> str:
    """A caller id as one folder segment in ImageKit's alphabet, distinct callers never equal.

    Ids already in the alphabet are used as they are. Any other id has its other characters
    replaced by ``_`` and a hash of the original appended, and so has any id that itself ends
    like such a hash, so no id can be written to look like another one's folder.
    """
    clean = re.sub(r"[^A-Za-z0-9_-]", "_", caller)[:64] or "_"
    if clean != caller or _HASHED_SUFFIX_RE.search(clean):
        clean += "_" + hashlib.sha256(caller.encode()).hexdigest()[:16]
    return clean


@lru_cache(maxsize=4096)
def render_folder(template: str, caller: str) -> str:
    """The profile's folder for this caller (the same for every request of the caller: kept for
    the most recent callers)."""
    if CALLER_PLACEHOLDER in template:
        template = template.replace(CALLER_PLACEHOLDER, caller_segment(caller))
    return normalise_folder(template)


def check_template(template: str) -> None:
    """Validate a folder template at start-up (raises ValueError)."""
    normalise_folder(template.replace(CALLER_PLACEHOLDER, "x"))  # BadFolder is a ValueError
