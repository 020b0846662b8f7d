"""After a file is stored: its webhook event into the outbox, and its credential's receipt."""

import uuid
from dataclasses import replace

from app.core.clock import now_ms
from app.core.imagekit.filetypes import FileType
from app.core.ledger import LedgerUnavailable
from app.core.ledger.records import Receipt
from app.core.logs import get_logger
from app.core.webhooks.events import file_event
from app.upload_api.answer import file_url, response_body
from app.upload_api.authenticate import Authenticated
from app.upload_api.context import UploadContext
from app.upload_api.options import RESPONSE_FIELDS, UploadOptions
from app.upload_api.storage import StoredFile

log = get_logger("upload_api")


async def report(
    ctx: UploadContext,
    authenticated: Authenticated,
    stored: StoredFile,
    options: UploadOptions,
    file_type: FileType,
    base_url: str,
) -> None:
    """After the file is stored: its webhook event into the outbox (delivered in the
    background), and the credential's receipt into the ledger. Neither fails the upload."""
    if ctx.events is None and authenticated.key is None:
        return
    moment = now_ms(ctx.clock)
    event_id = None
    if ctx.events is not None:
        event_id = str(uuid.uuid4())
        everything = replace(options, response_fields=RESPONSE_FIELDS)
        answer = response_body(stored, everything, file_type, base_url)
        body, left_out = file_event(
            event_id,
            answer,
            mime=stored.mime,
            new_version=stored.version > 1,
            issued=authenticated.issued,
            now_ms=moment,
        )
        if left_out:
            ctx.events.metrics.trimmed.inc()
            log.info("event trimmed", extra={"event_id": event_id, "left_out": left_out})
        await ctx.events.enqueue(event_id, body)
    if authenticated.key is not None:
        file = {
            "fileId": stored.file_id,
            "versionId": stored.version_id,
            "name": stored.name,
            "filePath": stored.file_path,
            "size": stored.size,
            "url": file_url(base_url, stored.file_path),
        }
        receipt = Receipt(authenticated.issued, moment, file, event_id)
        try:
            await ctx.ledger.note_use(authenticated.key, receipt.to_json(), ctx.receipt_retention)
        except LedgerUnavailable:
            log.warning("a receipt could not be recorded", extra={"file_id": stored.file_id})
