"""ImageKit's upload response for a stored file, and where the upload API serves it."""

from typing import Any, Final
from urllib.parse import quote

from app.core.imagekit.filetypes import FileType, Kind
from app.upload_api.fields import extension_status
from app.upload_api.media import Probe, format_name
from app.upload_api.options import RESPONSE_FIELDS
from app.upload_api.storage import StoredFile

#: The probe's fields that go into the response as they are (ImageKit's names).
MEDIA_FIELDS: Final = ("duration", "bitRate", "videoCodec", "audioCodec")


#: ImageKit's named transformation for the media library's thumbnails.
THUMBNAIL_SEGMENT: Final = "tr:n-ik_ml_thumbnail"


def file_url(base_url: str, file_path: str, transformation: str | None = None) -> str:
    """Where the upload API serves a stored file (``transformation``: a named one of it, as
    ImageKit puts it in the path: ``/files/tr:n-.../<path>``)."""
    prefix = f"/files/{transformation}" if transformation else "/files"
    return base_url + prefix + quote(file_path)


def response_body(
    stored: StoredFile,
    file_type: FileType,
    base_url: str,
    *,
    wanted: frozenset[str] = RESPONSE_FIELDS,
    extensions: tuple[str, ...] = (),
) -> dict[str, Any]:
    """ImageKit's upload response for a stored file: with the ``responseFields`` asked for
    (every one unless said) and the status of the ``extensions`` asked for."""
    url = file_url(base_url, stored.file_path)
    image = file_type.kind is Kind.IMAGE
    found: Probe = stored.media or {}  # type: ignore[assignment]
    body: dict[str, Any] = {
        "fileId": stored.file_id,
        "name": stored.name,
        "size": stored.size,
        "versionInfo": {"id": stored.version_id, "name": f"Version {stored.version}"},
        "filePath": stored.file_path,
        "url": url,
        "fileType": "image" if image else "non-image",
        "AITags": None,
    }
    if found.get("thumbnail"):
        body["thumbnailUrl"] = file_url(base_url, stored.file_path, THUMBNAIL_SEGMENT)
    if stored.width is not None and stored.height is not None:
        body["width"], body["height"] = stored.width, stored.height
    for name in MEDIA_FIELDS:
        if name in found:
            body[name] = found[name]
    if stored.description is not None:
        body["description"] = stored.description
    if extensions:
        body["extensionStatus"] = extension_status(extensions)
    if "tags" in wanted:
        body["tags"] = stored.tags
    if "customCoordinates" in wanted:
        body["customCoordinates"] = stored.custom_coordinates
    if "isPrivateFile" in wanted:
        body["isPrivateFile"] = stored.is_private_file
    if "isPublished" in wanted:
        body["isPublished"] = stored.is_published
    if "customMetadata" in wanted:
        body["customMetadata"] = stored.custom_metadata or {}
    if "embeddedMetadata" in wanted:
        body["embeddedMetadata"] = found.get("embeddedMetadata", {})
    if "metadata" in wanted:
        body["metadata"] = {
            "format": format_name(file_type.extension),
            **found.get("metadata", {}),
            "size": stored.size,
        }
    return body
