"""The upload API with a fixed delay before each upload is handled, standing in for the round
trip to a remote upload API (which loopback does not have). Settings from the environment;
``BENCH_LATENCY_MS`` sets the delay."""

import asyncio
import os

from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.settings import load_settings
from app.upload_api.app import create_upload_app


def create() -> ASGIApp:
    app = create_upload_app(load_settings())
    delay = float(os.environ.get("BENCH_LATENCY_MS", "0")) / 1000

    async def delayed(scope: Scope, receive: Receive, send: Send) -> None:
        if delay and scope["type"] == "http" and scope["path"].startswith("/api/"):
            await asyncio.sleep(delay)
        await app(scope, receive, send)

    return delayed
