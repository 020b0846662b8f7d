"""What "ready" means for the credential service (served by ``app.core.http.probes``)."""

from typing import cast

from fastapi import Request

from app.core import errors
from app.core.http.probes import Health
from app.credential_service.service import CredentialService


async def readiness(request: Request) -> Health:
    """Ready when keys are loaded. A configured Redis that does not answer is reported, but
    does not make the service unready: rate limits fall back to process memory, and taking
    every replica out of the load balancer at once would turn a Redis outage into a full one."""
    service = cast(CredentialService, request.state.service)
    if not len(service.keys.ring):
        raise errors.NotReady("no key pair is loaded")
    redis = await service.throttle.limiter.redis_status()
    return Health(status="ready", checks={"keys": "ok", **({"redis": redis} if redis else {})})
