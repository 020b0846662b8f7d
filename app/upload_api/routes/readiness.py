"""What "ready" means for the upload API (served by ``app.core.http.probes``)."""

from typing import cast

from fastapi import Request

from app.core.clock import now_ms
from app.core.http.probes import Health
from app.core.settings import Settings
from app.upload_api import messages
from app.upload_api.context import context_of


async def readiness(request: Request) -> Health:
    """Ready when the credential ledger answers (Redis, when configured) and the storage takes
    writes with at least ``storage_min_free`` free. A ledger that lost its data is ready again
    (it begins a new epoch, logged at warning)."""
    context = context_of(request)
    if not await context.ledger.ping(now_ms(context.clock)):
        raise messages.not_ready("the credential ledger does not answer")
    settings = cast(Settings, request.state.settings)
    trouble = await context.storage.health(settings.storage_min_free)
    if trouble is not None:
        raise messages.not_ready(trouble)
    return Health(status="ready", checks={"ledger": "ok", "storage": "ok"})
