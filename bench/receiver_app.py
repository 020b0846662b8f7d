"""A webhook receiver for the fault run, in a process of its own (a receiver in the run's own
process shares its GIL with the load and falls behind): answers 200 to every POST and appends
``webhook-id<TAB>filePath`` to the file ``RECEIVER_LOG`` names; any GET answers 200 (ready).

    RECEIVER_LOG=deliveries.tsv .venv/bin/python -m uvicorn bench.receiver_app:app --port N
"""

import json
import os

from starlette.types import Receive, Scope, Send

_log = open(os.environ.get("RECEIVER_LOG", os.devnull), "a", buffering=1)  # noqa: SIM115 - for the process's life


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["method"] == "POST":
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        path = json.loads(body)["data"]["filePath"]
        _log.write(f"{headers['webhook-id']}\t{path}\n")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})
