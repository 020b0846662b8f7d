"""The routes every role serves beside its own: liveness, readiness and Prometheus metrics.

Public like any probe (restrict ``/metrics`` at the network edge), never cached, not in an OpenAPI
document. Each role says what "ready" means for it; the answers have one shape.
"""

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, ConfigDict

from app.core.http.problems import no_store


class Health(BaseModel):
    """A probe's answer: ``ok`` (alive), ``ready``, and what readiness checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: str
    checks: dict[str, str] | None = None


#: Whether the role can serve now: its Health, or a ``NotReady`` problem saying why not.
Readiness = Callable[[Request], Awaitable[Health]]


def router(readiness: Readiness, registry: CollectorRegistry | None) -> APIRouter:
    """``/healthz``, ``/readyz`` (asking ``readiness``) and, with a registry, ``/metrics``."""
    probes = APIRouter(include_in_schema=False)

    @probes.get("/healthz", response_model_exclude_none=True, dependencies=[Depends(no_store)])
    async def healthz() -> Health:
        """The process is up and serving."""
        return Health(status="ok")

    @probes.get("/readyz", response_model_exclude_none=True, dependencies=[Depends(no_store)])
    async def readyz(request: Request) -> Health:
        return await readiness(request)

    if registry is not None:

        @probes.get("/metrics")
        async def metrics() -> Response:
            """The role's counters and histograms, in Prometheus' text format."""
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return probes
