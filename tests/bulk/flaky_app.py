"""An upload API that fails every 5th request, for the retry tests: with a 503, or (with
``FLAKY_ANSWER=forgotten``) with the 400 a ledger that lost its data gives a credential issued
before it ("fetch a new credential").

Run as ``python -m uvicorn tests.bulk.flaky_app:create --factory``; settings from the environment.
"""

import itertools
import json
import os

from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.settings import load_settings
from app.upload_api.app import create_upload_app


def create() -> ASGIApp:
    app = create_upload_app(load_settings())
    counter = itertools.count(1)
    forgotten = os.environ.get("FLAKY_ANSWER") == "forgotten"
    status = 400 if forgotten else 503
    message = (
        "The token with value 'x' has been used before. This upload API lost its record of "
        "used tokens after this credential was issued and cannot tell whether it was used: "
        "fetch a new credential and upload again."
        if forgotten
        else "flaky on purpose"
    )
    body = json.dumps({"message": message, "help": ""}).encode()

    async def flaky(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/") and next(counter) % 5 == 0:
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send(
                {
                    "type": "http.response.body",
                    "body": body,
                }
            )
            return
        await app(scope, receive, send)

    return flaky
