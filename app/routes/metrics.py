"""Prometheus metrics at /metrics: public like the probes (restrict it at the network edge)."""

from typing import cast

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.metrics import Metrics

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """The service's counters and latency histograms, in Prometheus' text format."""
    registry = cast(Metrics, request.state.metrics)
    return Response(registry.render(), media_type=CONTENT_TYPE_LATEST)
