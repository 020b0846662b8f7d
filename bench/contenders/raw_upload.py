"""The upload floor: a bare Starlette endpoint that streams the raw request body to disk."""

import os
import tempfile

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def upload(request: Request) -> JSONResponse:
    directory = os.environ.get("BENCH_DIR", tempfile.gettempdir())
    fd, path = tempfile.mkstemp(dir=directory)
    size = 0
    with os.fdopen(fd, "wb") as out:
        async for chunk in request.stream():
            out.write(chunk)
            size += len(chunk)
    os.unlink(path)
    return JSONResponse({"size": size})


async def healthz(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def create() -> Starlette:
    return Starlette(
        routes=[Route("/upload", upload, methods=["POST"]), Route("/healthz", healthz)]
    )
