"""Liveness and readiness probes: public, never cached, not in the OpenAPI document."""

from fastapi import APIRouter, Depends

from app import errors
from app.deps import KeysDep, ThrottleDep
from app.handlers import no_store
from app.schemas import Health

router = APIRouter(include_in_schema=False, dependencies=[Depends(no_store)])


@router.get("/healthz", response_model_exclude_none=True)
async def healthz() -> Health:
    """The process is up and serving."""
    return Health(status="ok")


@router.get("/readyz", response_model_exclude_none=True)
async def readyz(keys: KeysDep, throttle: ThrottleDep) -> Health:
    """Ready when keys are loaded. A configured Redis that does not answer is reported, but
    does not make the service unready: rate limits fall back to process memory, and taking
    every replica out of the load balancer at once would turn a Redis outage into a full one."""
    if not len(keys):
        raise errors.NotReady("no key pair is loaded")
    redis = await throttle.limiter.redis_status()
    return Health(status="ready", checks={"keys": "ok", **({"redis": redis} if redis else {})})
