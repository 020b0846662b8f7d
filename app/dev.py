"""Development mode: the credential service and the upload API behind one address.

``upload-auth dev`` serves both on one port: ``/api/...`` and ``/files/...`` go to the upload
API, everything else to the credential service, both sharing one (throwaway) key ring. Each app
keeps its own lifespan and its own state.
"""

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from app.core.clock import Clock
    from app.core.settings import Settings


class _Lifespan:
    """Runs one ASGI app's lifespan protocol on the side, with its own state."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self.state}
        await self.app(scope, self.inbox.get, self.outbox.put)

    async def _step(self, message: str) -> None:
        await self.inbox.put({"type": f"lifespan.{message}"})
        reply = await self.outbox.get()
        if reply["type"] != f"lifespan.{message}.complete":
            raise RuntimeError(reply.get("message", f"lifespan {message} failed"))

    async def startup(self) -> None:
        self.task = asyncio.create_task(self._run())
        await self._step("startup")

    async def shutdown(self) -> None:
        await self._step("shutdown")
        if self.task is not None:
            await self.task


class Dispatch:
    """Route HTTP requests by path prefix; run every app's lifespan."""

    def __init__(self, default: ASGIApp, routes: Sequence[tuple[tuple[str, ...], ASGIApp]]):
        self.default = _Lifespan(default)
        self.routes = [(prefixes, _Lifespan(app)) for prefixes, app in routes]

    def _all(self) -> list[_Lifespan]:
        return [self.default, *(life for _, life in self.routes)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        target = self.default
        path = scope.get("path", "")
        for prefixes, life in self.routes:
            if path.startswith(prefixes):
                target = life
                break
        await target.app({**scope, "state": dict(target.state)}, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        started: list[_Lifespan] = []
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for life in self._all():
                        await life.startup()
                        started.append(life)
                except Exception as exc:  # reported to the server, which then stops
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for life in reversed(started):
                    await life.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def serve_both(settings: "Settings", *, clock: "Clock | None" = None) -> Dispatch:
    """The credential service and the upload API in one process: one key ring, and one ledger
    in memory (unless Redis is configured), so v1 grants reach the upload API."""
    from app.core import parts
    from app.core.clock import system_clock
    from app.core.ledger import MemoryLedger
    from app.credential_service.app import create_app
    from app.upload_api.app import create_upload_app

    clock = clock or system_clock
    keys = parts.keys(settings)  # one key source: one watcher of the key files
    ledger = None if settings.redis_url is not None else MemoryLedger(clock)
    service = create_app(settings, keys=keys, clock=clock, ledger=ledger)
    upload_api = create_upload_app(settings, keys=keys, clock=clock, ledger=ledger)
    return Dispatch(service, [(("/api/", "/files/"), upload_api)])
