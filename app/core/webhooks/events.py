"""ImageKit's webhook events, and their signatures. Pure.

An event is ``{"type", "id", "created_at", "data", "receipt"}``: ``data`` is the file as the
official SDKs' ``File`` type describes it, ``receipt`` says which credential stored it (who it
was issued to, the profile, the credential request's id), so a back end can trust "caller X
uploaded file Y" without taking the browser's word.

Signatures: ImageKit today follows Standard Webhooks (``webhook-id``, ``webhook-timestamp``,
``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``), which imagekitio 5.x's
``webhooks.unwrap`` verifies; its older SDKs (the Node SDK's ``verifyWebhookEvent``) verify
``x-ik-signature: t=<ms>,v1=<hex HMAC-SHA256 of "t.body">``. Every delivery carries both, both
keyed with the webhook secret's bytes, and is signed afresh on every attempt (the timestamps
are checked for freshness by the verifiers).
"""

import base64
import hashlib
import hmac
import json
from typing import Any, Final, Literal

from app.core.ledger.records import Issued, iso

EventType = Literal["file.created", "file-version.created"]

#: The upload answer's fields that the SDKs' ``File`` type names the same way.
_FILE_FIELDS: Final = (
    "fileId",
    "name",
    "filePath",
    "url",
    "fileType",
    "size",
    "width",
    "height",
    "isPrivateFile",
    "isPublished",
    "tags",
    "customCoordinates",
    "customMetadata",
    "embeddedMetadata",
    "versionInfo",
    "AITags",
    "description",
    "duration",
    "bitRate",
    "videoCodec",
    "audioCodec",
)


#: The largest event body. Over it, the fields that can grow without bound are left out, in
#: this order, until it fits: the file's embedded metadata (EXIF, IPTC, XMP, container tags),
#: the EXIF in its metadata, its custom metadata, its tags and description. What remains (ids,
#: path, URL, size, type, dimensions, the receipt) is bounded; the receiver reads the rest from
#: the file when it wants it.
MAX_EVENT_BYTES: Final = 64 * 1024
_TRIMMABLE: Final = (
    ("embeddedMetadata",),
    ("metadata", "exif"),
    ("customMetadata",),
    ("tags",),
    ("description",),
)


def _encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def bounded(event: dict[str, Any]) -> tuple[bytes, list[str]]:
    """The event's body within ``MAX_EVENT_BYTES``, and the fields left out to get there."""
    body, left_out = _encode(event), []
    for path in _TRIMMABLE:
        if len(body) <= MAX_EVENT_BYTES:
            break
        holder = event["data"]
        for key in path[:-1]:
            holder = holder.get(key) or {}
        if path[-1] in holder:
            del holder[path[-1]]
            left_out.append(".".join(path))
            body = _encode(event)
    return body, left_out


def file_event(
    event_id: str,
    answer: dict[str, Any],
    *,
    mime: str,
    new_version: bool,
    issued: Issued,
    now_ms: int,
) -> tuple[bytes, list[str]]:
    """The event for a stored upload, and the fields left out to keep it within
    ``MAX_EVENT_BYTES``: ``answer`` is the upload's answer with every response field (tags,
    customMetadata, embeddedMetadata...)."""
    data: dict[str, Any] = {name: answer[name] for name in _FILE_FIELDS if name in answer}
    data["type"] = "file-version" if new_version else "file"
    data["mime"] = mime
    if "thumbnailUrl" in answer:
        data["thumbnail"] = answer["thumbnailUrl"]
    data["createdAt"] = data["updatedAt"] = iso(now_ms)
    kind: EventType = "file-version.created" if new_version else "file.created"
    event = {
        "type": kind,
        "id": event_id,
        "created_at": iso(now_ms),
        "data": data,
        "receipt": issued.answer(),
    }
    return bounded(event)


def signature_headers(secret: bytes, event_id: str, body: bytes, now: float) -> dict[str, str]:
    """The headers of one delivery attempt at ``now`` (Unix seconds)."""
    seconds, millis = int(now), int(now * 1000)
    standard = hmac.new(secret, f"{event_id}.{seconds}.".encode() + body, hashlib.sha256)
    legacy = hmac.new(secret, f"{millis}.".encode() + body, hashlib.sha256)
    return {
        "content-type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(seconds),
        "webhook-signature": "v1," + base64.b64encode(standard.digest()).decode(),
        "x-ik-signature": f"t={millis},v1={legacy.hexdigest()}",
    }
