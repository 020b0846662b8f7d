"""An upload API that fails every 5th request with a 503, for the retry tests.

Run as ``python -m uvicorn tests.bulk.flaky_app:create --factory``; settings from the environment.
"""

import itertools

from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.settings import load_settings
from app.upload_api.app import create_upload_app


def create() -> ASGIApp:
    app = create_upload_app(load_settings())
    counter = itertools.count(1)

    async def flaky(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/") and next(counter) % 5 == 0:
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send(
                {
                    "type": "http.response.body",
                    "body": b'{"message": "flaky on purpose", "help": ""}',
                }
            )
            return
        await app(scope, receive, send)

    return flaky
