"""The upload's parameters: ImageKit's form fields validated, and a v1 grant applied to them and to
the file (what the client left out is the grant's; what it sent may narrow the grant, never widen
it)."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from app.core.imagekit.filetypes import FileType, extension_of
from app.core.imagekit.rules import RuleError, check_tags, format_size, is_within, normalise_folder
from app.core.ledger.records import UploadGrant
from app.upload_api import messages
from app.upload_api.fields import JsonFields

RESPONSE_FIELDS: Final = frozenset(
    {
        "tags",
        "customCoordinates",
        "isPrivateFile",
        "embeddedMetadata",
        "isPublished",
        "customMetadata",
        "metadata",
        "selectedFieldsSchema",
    }
)


@dataclass(frozen=True)
class UploadOptions:
    """The validated upload parameters."""

    file_name: str
    folder: str
    unique: bool
    overwrite: bool
    private: bool
    published: bool
    tags: list[str] | None
    custom_coordinates: str | None
    custom_metadata: dict[str, Any] | None
    description: str | None
    response_fields: frozenset[str]
    #: The extensions asked for (none runs here: each is reported ``failed``).
    extensions: tuple[str, ...] = ()


def _flag(fields: Mapping[str, str], name: str, default: bool) -> bool:
    value = fields.get(name)
    if value is None:
        return default
    if value not in ("true", "false"):
        raise messages.invalid_parameter(name)
    return value == "true"


def parse_options(fields: Mapping[str, str], json_fields: JsonFields) -> UploadOptions:
    """The upload's parameters, each checked as ImageKit checks it, in ImageKit's order (the
    JSON-valued ones were checked before the credential was burned: ``json_fields``)."""
    file_name = fields.get("fileName")
    if not file_name:
        raise messages.missing_parameter("fileName")
    if len(file_name) > 1024:
        raise messages.invalid_parameter("fileName")
    try:
        folder = normalise_folder(fields.get("folder", "/"))
    except RuleError:
        raise messages.invalid_parameter("folder") from None
    for name in messages.BOOLEAN_FIELDS:
        _flag(fields, name, True)
    tags = _tags(fields.get("tags"))
    coordinates = _coordinates(fields.get("customCoordinates") or None)
    requested = {f.strip() for f in fields.get("responseFields", "").split(",") if f.strip()}
    if requested - RESPONSE_FIELDS:
        raise messages.invalid_parameter("responseFields")
    return UploadOptions(
        file_name=file_name,
        folder=folder,
        unique=_flag(fields, "useUniqueFileName", True),
        overwrite=_flag(fields, "overwriteFile", True),
        private=_flag(fields, "isPrivateFile", False),
        published=_flag(fields, "isPublished", True),
        tags=tags,
        custom_coordinates=coordinates,
        custom_metadata=json_fields.custom_metadata,
        description=fields.get("description"),
        response_fields=frozenset(requested),
        extensions=json_fields.extensions,
    )


def _tags(value: str | None) -> list[str] | None:
    """``tags``: comma-separated, by ImageKit's rules; None when not sent."""
    if not value:
        return None
    try:
        check_tags(value)
    except RuleError:
        raise messages.invalid_parameter("tags") from None
    return [t.strip() for t in value.split(",") if t.strip()]


def _coordinates(value: str | None) -> str | None:
    """``customCoordinates``: four ASCII integers, ``x,y,width,height``."""
    if value is not None:
        parts = value.split(",")
        if len(parts) != 4 or not all(p.strip().isascii() and p.strip().isdigit() for p in parts):
            raise messages.invalid_parameter("customCoordinates")
    return value


#: The flags a v1 grant fixes: (field, the grant's attribute, the value that would widen it).
_GRANT_FLAGS: Final = (
    ("useUniqueFileName", "use_unique_file_name", "false", "requires unique file names"),
    ("overwriteFile", "overwrite", "true", "may not overwrite existing files"),
    ("isPrivateFile", "private", "false", "may only upload private files"),
)


def within_grant(fields: Mapping[str, str], grant: UploadGrant) -> dict[str, str]:
    """The upload's fields under a v1 grant: what the client left out is the grant's, what it
    sent may narrow the grant but never widen it (or the upload is refused, naming the limit)."""
    effective = dict(fields)
    requested = fields.get("folder")
    if requested is None:
        effective["folder"] = grant.folder
    else:
        try:
            folder = normalise_folder(requested)
        except RuleError:
            raise messages.invalid_parameter("folder") from None
        if not is_within(folder, grant.folder):
            raise messages.outside_grant(
                "folder",
                f"This credential allows uploads only into {grant.folder} "
                f"(profile '{grant.profile}').",
                "grant-folder",
            )
    for name, attribute, widening, rule in _GRANT_FLAGS:
        granted = "true" if getattr(grant, attribute) else "false"
        if name not in fields:
            effective[name] = granted
        elif fields[name] == widening != granted:
            raise messages.outside_grant(
                name, f"This credential's profile '{grant.profile}' {rule}.", "grant-flag"
            )
    if grant.tags:
        requested_tags = [t.strip() for t in fields.get("tags", "").split(",") if t.strip()]
        effective["tags"] = ",".join(dict.fromkeys([*grant.tags, *requested_tags]))
    return effective


def check_grant(grant: UploadGrant, file_name: str, file_type: FileType, size: int) -> None:
    """The file itself under a v1 grant: its type (by name and by content) and its size."""
    if extension_of(file_name) not in grant.types or file_type.extension not in grant.types:
        raise messages.outside_grant(
            "file",
            "This file type is not allowed. This credential's profile "
            f"'{grant.profile}' allows only: {', '.join(grant.types)}.",
            "grant-type",
        )
    limit = grant.limit_for(file_type.kind)
    if size > limit:
        raise messages.outside_grant(
            "file",
            f"The file size exceeds limits. This credential allows at most {format_size(limit)} "
            f"for this type; the file is {format_size(size)}.",
            "grant-size",
        )
