"""``POST /api/v1/files/upload`` and ``/api/v2/files/upload``: the body handed to the pipeline,
and a refusal that comes before the whole body was read drained (bounded) so the client reads
the answer."""

import asyncio
from collections.abc import AsyncIterator
from typing import Final, Literal, cast

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from app.core.logs import get_logger
from app.core.settings import Settings
from app.upload_api import messages
from app.upload_api.context import context_of
from app.upload_api.pipeline import UploadRequest, upload

log = get_logger("upload_api")
router = APIRouter()


def _base_url(request: Request) -> str:
    configured = cast(Settings, request.state.settings).public_url
    return (configured or str(request.base_url)).rstrip("/")


#: A refusal decided before the whole body was read is sent after reading (and discarding) the
#: rest, so that clients which write the whole body before they read the answer (Node's fetch,
#: SDKs built on it) get the answer instead of a broken pipe; bounded: only a body declared at
#: most this large, for at most ``DRAIN_SECONDS``. Anything else is answered at once and the
#: connection closed.
DRAIN_BYTES: Final = 64 * 1024 * 1024
DRAIN_SECONDS: Final = 10.0


class _Body:
    """The request body as chunks (Starlette's ``Request.stream``), knowing whether it has all
    arrived: a refusal decided at the last chunk has nothing left to drain."""

    def __init__(self, request: Request) -> None:
        self.receive = request.receive
        self.complete = False

    async def chunks(self) -> AsyncIterator[bytes]:
        while not self.complete:
            message = await self.receive()
            if message["type"] != "http.request":
                raise ClientDisconnect()
            self.complete = not message.get("more_body", False)
            chunk = message.get("body", b"")
            if chunk:
                yield chunk


async def _drain(request: Request, body: _Body) -> bool:
    """Read and discard the rest of a declared body; whether it was all read in time."""
    if body.complete:
        return True
    declared = request.headers.get("content-length", "")
    if not (declared.isascii() and declared.isdigit()) or int(declared) > DRAIN_BYTES:
        return False
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while True:
                message = await request.receive()
                if message["type"] != "http.request":
                    return False
                if not message.get("more_body", False):
                    return True
    except TimeoutError:
        return False


async def _upload(request: Request, version: Literal[1, 2]) -> JSONResponse:
    received = _Body(request)
    try:
        body = await upload(
            context_of(request),
            UploadRequest(
                version=version,
                content_type=request.headers.get("content-type"),
                content_length=request.headers.get("content-length"),
                authorization=request.headers.get("authorization"),
                body=received.chunks(),
                base_url=_base_url(request),
            ),
        )
    except ClientDisconnect:
        log.info("client went away mid-upload")
        raise messages.malformed_body() from None
    except messages.UploadError as refusal:
        if refusal.body_unread and await _drain(request, received):
            refusal.body_unread = False  # all read: the answer arrives, the connection stays
        raise
    log.info(
        "upload stored", extra={"version": version, "size": body["size"], "file_id": body["fileId"]}
    )
    return JSONResponse(body)


@router.post("/api/v1/files/upload")
async def upload_v1(request: Request) -> JSONResponse:
    """ImageKit v1: server-side (Basic auth) or client-side (signature) upload."""
    return await _upload(request, 1)


@router.post("/api/v2/files/upload")
async def upload_v2(request: Request) -> JSONResponse:
    """ImageKit v2: server-side (Basic auth) or client-side (JWT) upload."""
    return await _upload(request, 2)
