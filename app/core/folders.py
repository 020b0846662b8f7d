"""Caller identities, and folder templates (a profile's folder with ``{caller}`` in it) rendered
for each identity.

Pure. A caller's identity is its id qualified by the namespace of the method that recognised it
(``key:backend``, ``idp:alice``, ``session:alice``), so two login methods never produce the same
identity unless the operator gives them one namespace. ``{caller}`` renders the identity as one
folder segment, ``<namespace>-<id>`` (``/users/session-alice``), and no other identity can be
written to name it.
"""

import hashlib
import re
from functools import lru_cache
from typing import Final

from app.core.imagekit.rules import normalise_folder

_HASHED_SUFFIX_RE: Final = re.compile(r"_[0-9a-f]{16}$")
CALLER_PLACEHOLDER: Final = "{caller}"
#: What a namespace may be: lower-case letters and digits, so neither ``:`` nor ``-`` (which
#: end it in an identity and in a folder segment) can appear in it.
NAMESPACE_PATTERN: Final = r"^[a-z][a-z0-9]{0,15}$"


def identity(namespace: str, caller_id: str) -> str:
    """A caller's identity: its id qualified by its method's namespace (``session:alice``)."""
    return f"{namespace}:{caller_id}"


def caller_segment(caller: str) -> str:
    """A caller identity (``namespace:id``) as one folder segment in ImageKit's alphabet,
    ``namespace-id``; distinct identities never give the same segment.

    The namespace has no ``-``, so the first ``-`` ends it. Ids already in the alphabet are used
    as they are. Any other id has its other characters replaced by ``_`` and a hash of the
    original appended, and so has any id that itself ends like such a hash, so no id can be
    written to look like another one's folder.
    """
    namespace, _, caller_id = caller.partition(":")
    clean = re.sub(r"[^A-Za-z0-9_-]", "_", caller_id)[:64] or "_"
    if clean != caller_id or _HASHED_SUFFIX_RE.search(clean):
        clean += "_" + hashlib.sha256(caller_id.encode()).hexdigest()[:16]
    return f"{namespace}-{clean}"


@lru_cache(maxsize=4096)
def render_folder(template: str, caller: str) -> str:
    """The profile's folder for this caller identity (the same for every request of the caller:
    kept for the most recent callers)."""
    if CALLER_PLACEHOLDER in template:
        template = template.replace(CALLER_PLACEHOLDER, caller_segment(caller))
    return normalise_folder(template)


def check_template(template: str) -> None:
    """Validate a folder template at start-up (raises ValueError)."""
    normalise_folder(template.replace(CALLER_PLACEHOLDER, "x"))  # BadFolder is a ValueError
