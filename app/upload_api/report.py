"""After a file is stored: its webhook event into the outbox, and its credential's receipt.

An upload's event is noted before its file is stored (``event_note``: its id, its moment, where
the file is served from and who the credential was issued to) and kept in the file's metadata,
so the event can be made again from the storage alone (``event_of``): when the shared outbox
lost its data (Redis restarted empty, or flushed), the sender refills it with the events of the
files stored since then (``recover_events``), under the same ids.
"""

import asyncio
import uuid
from dataclasses import asdict
from typing import Any

from app.core.clock import now_ms
from app.core.imagekit.filetypes import lookup
from app.core.ledger import LedgerUnavailable
from app.core.ledger.records import Issued, Receipt
from app.core.logs import get_logger
from app.core.webhooks.events import file_event
from app.upload_api.answer import file_url, response_body
from app.upload_api.authenticate import Authenticated
from app.upload_api.context import UploadContext
from app.upload_api.storage import Storage, StoredFile

log = get_logger("upload_api")


def event_note(ctx: UploadContext, authenticated: Authenticated, base_url: str) -> dict[str, Any]:
    """What the upload's event is made of, besides the stored file: kept in its metadata."""
    return {
        "id": str(uuid.uuid4()),
        "at": now_ms(ctx.clock),
        "base": base_url,
        "issued": asdict(authenticated.issued),
    }


def event_of(stored: StoredFile) -> tuple[str, bytes, list[str]] | None:
    """The stored file's event (id, body, fields left out to keep it bounded), made from the
    file's metadata and its event note; None without a note or for a type no longer known."""
    note, file_type = stored.event, lookup(stored.extension)
    if note is None or file_type is None:
        return None
    answer = response_body(stored, file_type, note["base"])  # every response field
    body, left_out = file_event(
        note["id"],
        answer,
        mime=stored.mime,
        new_version=stored.version > 1,
        issued=Issued(**note["issued"]),
        now_ms=note["at"],
    )
    return note["id"], body, left_out


async def recover_events(storage: Storage, since_ms: int) -> list[tuple[str, bytes]]:
    """The events of the files stored since ``since_ms``, made again from the storage."""
    stored_since = await storage.events_since(since_ms)

    def remake() -> list[tuple[str, bytes]]:
        found = []
        for stored in stored_since:
            try:
                made = event_of(stored)
            except (KeyError, TypeError, ValueError):  # a note this version cannot read
                continue
            if made is not None:
                found.append((made[0], made[1]))
        return found

    return await asyncio.to_thread(remake)


async def report(
    ctx: UploadContext,
    authenticated: Authenticated,
    stored: StoredFile,
    base_url: str,
) -> None:
    """After the file is stored: its webhook event into the outbox (delivered in the
    background), and the credential's receipt into the ledger. Neither fails the upload."""
    event_id = None
    if ctx.events is not None:
        made = event_of(stored)
        if made is not None:
            event_id, body, left_out = made
            if left_out:
                ctx.events.metrics.trimmed.inc()
                log.info("event trimmed", extra={"event_id": event_id, "left_out": left_out})
            await ctx.events.enqueue(event_id, body)
    if authenticated.key is None:
        return
    file = {
        "fileId": stored.file_id,
        "versionId": stored.version_id,
        "name": stored.name,
        "filePath": stored.file_path,
        "size": stored.size,
        "url": file_url(base_url, stored.file_path),
    }
    receipt = Receipt(authenticated.issued, now_ms(ctx.clock), file, event_id)
    try:
        await ctx.ledger.note_use(authenticated.key, receipt.to_json(), ctx.receipt_retention)
    except LedgerUnavailable:
        log.warning("a receipt could not be recorded", extra={"file_id": stored.file_id})
