"""The audit trail: one structured event per credential issued or refused.

Events go to the ``upload_auth.audit`` logger as JSON lines (caller, method, profile, file
name, size, type, expiry, reason) and into the Prometheus counters. Never the token, the
signature or a key: the event has no field that could hold one.
"""

from dataclasses import dataclass, field
from typing import Any

from app.core.logs import event, get_logger
from app.credential_service.metrics import Metrics

log = get_logger("audit")


@dataclass
class AuditContext:
    """What a credential request has revealed so far; filled as the request is handled."""

    version: str
    caller: str | None = None
    method: str | None = None
    profile: str | None = None
    file: dict[str, Any] = field(default_factory=dict)

    def fields(self, **more: Any) -> dict[str, Any]:
        """The event's fields: what is known so far, then ``more``."""
        event: dict[str, Any] = {"version": self.version}
        if self.caller is not None:
            event["caller"] = self.caller
        if self.method is not None:
            event["method"] = self.method
        if self.profile is not None:
            event["profile"] = self.profile
        event.update(self.file)
        event.update(more)
        return event


class Audit:
    def __init__(self, metrics: Metrics, profiles: frozenset[str]) -> None:
        self.metrics = metrics
        self.profiles = profiles

    def _label(self, profile: str | None) -> str:
        if profile is None:
            return "none"
        return profile if profile in self.profiles else "other"

    def issued(self, context: AuditContext, *, expires_at: int) -> None:
        self.metrics.issued_counter(
            context.version, self._label(context.profile), context.method or "none"
        ).inc()
        event(log, "credential.issued", context.fields(expires_at=expires_at))

    def refused(self, context: AuditContext, *, reason: str, status: int) -> None:
        self.metrics.refused.labels(context.version, self._label(context.profile), reason).inc()
        event(log, "credential.refused", context.fields(reason=reason, status=status))
