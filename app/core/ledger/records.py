"""The records the ledger carries between the credential service and the upload API. Pure.

``UploadGrant``: what a v1 credential permits, written by the credential service when it signs,
read by the upload API when the credential is used.

Receipts: who a credential was issued to, and what it was used for. The credential service
records who asked (``Issued``: caller, profile, request id, when) under the credential's
ledger key when it signs. The upload API reads it back when the credential is used, puts it in
the upload's webhook event, and records the ``Receipt`` (who, and which file) for the receipt
retention, so a back end can trust "caller X uploaded file Y" from the event or,
without webhooks, by asking the credential service (``POST /v1/receipts``).
"""

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from app.core.fastjson import dumps
from app.core.imagekit.filetypes import Kind

#: How the upload was authenticated: a v1 signature, a v2 JWT, or the private key itself
#: (a server-side upload, issued to nobody).
Credential = Literal["v1", "v2", "private-key"]


def iso(ms: int) -> str:
    """Unix milliseconds as ISO 8601 in UTC, ImageKit's format (``2026-11-28T08:05:50.123Z``)."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class Issued:
    """Who a credential was issued to; None fields: not known (an unbound v1 signature, a
    private-key upload, or a record the ledger no longer has)."""

    credential: Credential
    caller: str | None = None
    profile: str | None = None
    request_id: str | None = None
    issued_ms: int | None = None

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_record(cls, credential: Credential, raw: bytes | None) -> "Issued":
        """From the ledger's record of the credential: a v2 ``Issued`` or a v1 grant (both
        carry caller, profile, request_id and issued_ms); nothing known if it is unreadable."""
        if raw is None:
            return cls(credential)
        try:
            data = json.loads(raw)
        except ValueError:
            return cls(credential)
        if not isinstance(data, dict):
            return cls(credential)

        def text(name: str) -> str | None:
            value = data.get(name)
            return value if isinstance(value, str) else None

        issued_ms = data.get("issued_ms")
        return cls(
            credential,
            caller=text("caller"),
            profile=text("profile"),
            request_id=text("request_id"),
            issued_ms=issued_ms if isinstance(issued_ms, int) and issued_ms > 0 else None,
        )

    def answer(self) -> dict[str, Any]:
        """The receipt's credential part as events and answers show it."""
        return {
            "credential": self.credential,
            "caller": self.caller,
            "profile": self.profile,
            "requestId": self.request_id,
            "issuedAt": iso(self.issued_ms) if self.issued_ms is not None else None,
        }


@dataclass(frozen=True, slots=True)
class Receipt:
    """A credential's use: who it was issued to, and the file it stored."""

    issued: Issued
    used_ms: int
    file: dict[str, Any]
    event_id: str | None = None

    def answer(self) -> dict[str, Any]:
        return {
            **self.issued.answer(),
            "usedAt": iso(self.used_ms),
            "file": self.file,
            "eventId": self.event_id,
        }

    def to_json(self) -> bytes:
        return dumps(
            {
                "issued": self.issued,  # a dataclass: orjson writes its fields (asdict if not)
                "used_ms": self.used_ms,
                "file": self.file,
                "event_id": self.event_id,
            },
            default=asdict,
        )

    @classmethod
    def from_json(cls, raw: bytes) -> "Receipt":
        """The ledger's receipt record (ValueError when it is not one)."""
        try:
            data = json.loads(raw)
            issued = Issued(**data["issued"])
            return cls(issued, int(data["used_ms"]), dict(data["file"]), data.get("event_id"))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError("not a receipt record") from exc


@dataclass(frozen=True, slots=True)
class UploadGrant:
    """What a v1 credential permits, bound to its token in the ledger when it is issued.

    A v1 signature covers only ``token + expire``: every other upload field is the client's to
    choose. The upload API looks this record up by the token and refuses an upload outside it.
    """

    profile: str
    caller: str
    folder: str
    types: tuple[str, ...]
    max_size: int
    max_video_size: int
    use_unique_file_name: bool
    overwrite: bool
    private: bool
    tags: tuple[str, ...]
    #: When it was issued, Unix milliseconds (the ledger's epoch is compared with this).
    issued_ms: int = 0
    #: The request id of the credential request, for receipts.
    request_id: str | None = None

    def limit_for(self, kind: Kind) -> int:
        return self.max_video_size if kind is Kind.VIDEO else self.max_size

    def to_json(self) -> bytes:
        return json.dumps(
            {name: getattr(self, name) for name in self.__slots__}, separators=(",", ":")
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "UploadGrant":
        """The grant a ledger record holds (ValueError if it is not one)."""
        try:
            data = json.loads(raw)
            return cls(
                **{
                    **data,
                    "types": tuple(data["types"]),
                    "tags": tuple(data["tags"]),
                }
            )
        except (TypeError, KeyError, RecursionError) as exc:
            raise ValueError("not a grant record") from exc
