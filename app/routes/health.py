"""Liveness and readiness probes: public, never cached, not in the OpenAPI document."""

from fastapi import APIRouter, Response

from app.deps import KeysDep
from app.schemas import Health

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
async def healthz(response: Response) -> Health:
    """The process is up and serving."""
    response.headers["Cache-Control"] = "no-store"
    return Health(status="ok")


@router.get("/readyz")
async def readyz(keys: KeysDep, response: Response) -> Health:
    """Keys are loaded; the service can issue credentials."""
    response.headers["Cache-Control"] = "no-store"
    return Health(status="ready" if len(keys) else "not-ready")
