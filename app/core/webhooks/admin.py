"""The operator's view of the outbox (``upload-auth webhooks``): how many events wait, the dead
letters, and replaying or purging them. Output is one JSON object per line, for people and for
``jq`` alike; an event's body is shown only with ``--bodies`` (it names files and callers)."""

import json
from collections.abc import Sequence

from app.core.webhooks.outbox import Outbox


async def status(outbox: Outbox) -> list[str]:
    """One line: pending events, their bytes, dead letters, and the bounds."""
    counts = await outbox.counts()
    limits = outbox.limits
    return [
        json.dumps(
            {
                **counts,
                "max_pending": limits.max_pending,
                "max_pending_bytes": limits.max_pending_bytes,
                "max_dead": limits.max_dead,
                "dead_retention_seconds": limits.dead_retention_ms // 1000,
            }
        )
    ]


async def dead_letters(outbox: Outbox, *, bodies: bool = False) -> list[str]:
    """A line per dead letter, oldest first: id, attempts, last error, when it died."""
    lines = []
    for letter in await outbox.dead_letters():
        line: dict[str, object] = {
            "id": letter.event_id,
            "attempts": letter.attempts,
            "error": letter.error,
            "dead_ms": letter.dead_ms,
            "bytes": len(letter.body),
        }
        if bodies:
            line["body"] = json.loads(letter.body)
        lines.append(json.dumps(line, ensure_ascii=False))
    return lines


async def replay(outbox: Outbox, event_ids: Sequence[str] | None, now_ms: int) -> list[str]:
    """Dead letters (these, or all) back to the queue: delivered again, from the first
    attempt, with their ids (receivers deduplicate)."""
    moved = await outbox.replay(list(event_ids) if event_ids else None, now_ms)
    return [json.dumps({"replayed": moved})]


async def purge(outbox: Outbox, event_ids: Sequence[str] | None) -> list[str]:
    """Dead letters (these, or all) removed for good."""
    removed = await outbox.purge(list(event_ids) if event_ids else None)
    return [json.dumps({"purged": removed})]
