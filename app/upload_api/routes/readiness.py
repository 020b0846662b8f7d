"""What "ready" means for the upload API (served by ``app.core.http.probes``)."""

from fastapi import Request

from app.core.clock import now_ms
from app.core.http.probes import Health
from app.upload_api import messages
from app.upload_api.context import context_of


async def readiness(request: Request) -> Health:
    """Ready when the credential ledger answers (Redis, when configured). A ledger that lost
    its data is ready again (it begins a new epoch, logged at warning)."""
    context = context_of(request)
    if not await context.ledger.ping(now_ms(context.clock)):
        raise messages.not_ready("the credential ledger does not answer")
    return Health(status="ready")
