"""Receipts: who a credential was issued to, and what it was used for. Pure.

The credential service records who asked (``Issued``: caller, profile, request id, when) under
the credential's ledger key when it signs. The upload API reads it back when the credential is
used, puts it in the upload's webhook event, and records the ``Receipt`` (who, and which file)
for the receipt retention, so a back end can trust "caller X uploaded file Y" from the event or,
without webhooks, by asking the credential service (``POST /v1/receipts``).
"""

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

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
        return json.dumps(
            {
                "issued": asdict(self.issued),
                "used_ms": self.used_ms,
                "file": self.file,
                "event_id": self.event_id,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "Receipt":
        """The ledger's receipt record (ValueError when it is not one)."""
        try:
            data = json.loads(raw)
            issued = Issued(**data["issued"])
            return cls(issued, int(data["used_ms"]), dict(data["file"]), data.get("event_id"))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError("not a receipt record") from exc
