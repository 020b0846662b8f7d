"""The JSON-valued form fields, checked against ImageKit's documented shapes before anything else
happens to an upload: before its credential is burned, so a client that sent a malformed field
can correct it and retry with the same credential, and before anything is written, so no
oversized or deeply nested value reaches the file's metadata. Pure.

- ``customMetadata``: an object of at most ``MAX_METADATA_FIELDS`` fields, each a string,
  number, boolean, null, or a list of those (ImageKit's field types, MultiSelect as a list);
- ``extensions``: a list of at most ``MAX_EXTENSIONS`` objects, each with a known ``name`` and
  flat ``options`` (no ``saved-extension``: this upload API keeps none);
- ``transformation``: ``{pre: str, post: [{type, value, protocol}]}``, ``value`` required for
  ``transformation`` and ``abs``;
- ``checks``: parsed (its own syntax error).
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from app.upload_api import checks, messages

MAX_METADATA_FIELDS: Final = 100
MAX_EXTENSIONS: Final = 10
MAX_POST_TRANSFORMATIONS: Final = 10
#: The extensions ImageKit runs, and the key each reports under in ``extensionStatus``.
EXTENSIONS: Final = frozenset(
    {"remove-bg", "google-auto-tagging", "aws-auto-tagging", "ai-auto-description", "ai-tasks"}
)
SAVED_EXTENSION: Final = "saved-extension"
_POST_TYPES: Final = frozenset({"transformation", "gif-to-video", "thumbnail", "abs"})
_NEEDS_VALUE: Final = frozenset({"transformation", "abs"})
_PROTOCOLS: Final = frozenset({"hls", "dash"})
_SCALARS: Final = (str, int, float, bool, type(None))


@dataclass(frozen=True, slots=True)
class JsonFields:
    """The JSON-valued fields, parsed and shaped as ImageKit documents them (None: not sent)."""

    custom_metadata: dict[str, Any] | None = None
    #: The requested extensions' names, in order.
    extensions: tuple[str, ...] = ()
    #: The ``checks`` expression, parsed (evaluated once the file has been read).
    check_tree: checks.Node | None = None


def _json(text: str) -> Any:
    """The JSON value, or ValueError (a recursion error is malformed input too)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _flat(value: Any) -> bool:
    """A scalar, or a list of scalars."""
    if isinstance(value, list):
        return all(isinstance(item, _SCALARS) for item in value)
    return isinstance(value, _SCALARS)


def custom_metadata(text: str) -> dict[str, Any]:
    """``customMetadata``: ValueError unless an object of flat fields."""
    value = _json(text)
    if not isinstance(value, dict) or len(value) > MAX_METADATA_FIELDS:
        raise ValueError("not an object of at most 100 fields")
    if not all(_flat(v) for v in value.values()):
        raise ValueError("a field is not a scalar or a list of scalars")
    return value


def extensions(text: str) -> tuple[str, ...]:
    """``extensions``: the names, ValueError unless a list of known extensions with flat
    options."""
    value = _json(text)
    if not isinstance(value, list) or len(value) > MAX_EXTENSIONS:
        raise ValueError("not a list of at most 10 extensions")
    names = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ValueError("an extension is not an object with a name")
        name = item["name"]
        if name == SAVED_EXTENSION:  # this upload API keeps no saved extensions
            raise ValueError("no saved extension by that id")
        if name not in EXTENSIONS:
            raise ValueError("an unknown extension")
        options = item.get("options", {})
        if not isinstance(options, dict) or not all(_flat(v) for v in options.values()):
            raise ValueError("an extension's options are not flat")
        if set(item) - {"name", "options"}:
            raise ValueError("an extension has unknown keys")
        names.append(name)
    return tuple(names)


def transformation(text: str) -> None:
    """``transformation``: ValueError unless ``{pre, post}`` as ImageKit documents it."""
    value = _json(text)
    if not isinstance(value, dict) or not value or set(value) - {"pre", "post"}:
        raise ValueError("not an object of pre and post")
    if "pre" in value and not isinstance(value["pre"], str):
        raise ValueError("pre is not a string")
    post = value.get("post", [])
    if not isinstance(post, list) or len(post) > MAX_POST_TRANSFORMATIONS:
        raise ValueError("post is not a list of at most 10 steps")
    for step in post:
        if not isinstance(step, dict) or step.get("type") not in _POST_TYPES:
            raise ValueError("a post step has no known type")
        if set(step) - {"type", "value", "protocol"}:
            raise ValueError("a post step has unknown keys")
        if not isinstance(step.get("value", ""), str):
            raise ValueError("a post step's value is not a string")
        if step["type"] in _NEEDS_VALUE and not step.get("value"):
            raise ValueError("a post step needs its value")
        if "protocol" in step and step["protocol"] not in _PROTOCOLS:
            raise ValueError("an unknown protocol")


def check_json_fields(fields: Mapping[str, str]) -> JsonFields:
    """Every JSON-valued field (and ``checks``) checked, in ImageKit's answers; raises
    ``messages.UploadError`` for the first that is malformed."""
    metadata = None
    if fields.get("customMetadata"):
        try:
            metadata = custom_metadata(fields["customMetadata"])
        except ValueError:
            raise messages.invalid_parameter("customMetadata") from None
    names: tuple[str, ...] = ()
    if fields.get("extensions"):
        try:
            names = extensions(fields["extensions"])
        except ValueError:
            raise messages.invalid_parameter("extensions") from None
    if fields.get("transformation"):
        try:
            transformation(fields["transformation"])
        except ValueError:
            raise messages.invalid_transformation() from None
    tree = None
    if "checks" in fields:
        try:
            tree = checks.parse(fields["checks"])
        except checks.ChecksSyntaxError:
            raise messages.checks_syntax() from None
    return JsonFields(metadata, names, tree)


def extension_status(names: tuple[str, ...]) -> dict[str, str]:
    """ImageKit's ``extensionStatus`` for the requested extensions: none runs here (no AI, no
    background removal), so each is ``failed`` (not retried), never silently left out."""
    return {name: "failed" for name in names if name in EXTENSIONS}
