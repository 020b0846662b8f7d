"""The media workers: a small pool of processes (pebble) that run the media libraries
(``app.upload_api.media``) for the upload API, off its event loop.

Each task is bounded: in time (a task over ``timeout`` seconds has its worker killed and
replaced) and in memory (each worker's address space is capped with ``RLIMIT_AS``; a file that
would need more gives ``MemoryError`` in the worker, not an out-of-memory kill of the service).
A task that fails in any way gives None: the upload goes on without what the task would have
told. Workers start on the first task, so a process that stores only text files never starts
one.
"""

import asyncio
import multiprocessing
import resource
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, TypeVar

from pebble import ProcessExpired, ProcessPool

from app.core.imagekit.filetypes import FileType, Kind
from app.core.logs import get_logger
from app.upload_api import dimensions, media, render

log = get_logger("upload_api")

T = TypeVar("T")


def _limit_memory(limit: int) -> None:
    """Worker initializer: cap the address space, then load the libraries (so that the first
    task pays neither)."""
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import av  # noqa: F401
    import pillow_heif  # noqa: F401
    from PIL import Image  # noqa: F401

    render.vips()


class MediaWorkers:
    def __init__(self, workers: int, *, timeout: float, memory: int) -> None:
        self.timeout = timeout
        self.memory = memory
        self._pool: ProcessPool | None = None
        self._workers = workers

    @property
    def enabled(self) -> bool:
        return self._workers > 0

    def _started(self) -> ProcessPool:
        if self._pool is None:
            self._pool = ProcessPool(
                max_workers=self._workers,
                initializer=_limit_memory,
                initargs=(self.memory,),
                # Not fork: the service has threads and an event loop that a child must not copy.
                context=multiprocessing.get_context("spawn"),
            )
        return self._pool

    async def run(self, function: Callable[..., T], *args: object, **kwargs: object) -> T | None:
        """``function(*args)`` in a worker; None when it fails, times out or runs out of
        memory (logged with the reason, never the file's content)."""
        if not self.enabled:
            return None
        try:
            future = self._started().schedule(
                function, args=args, kwargs=kwargs, timeout=self.timeout
            )
        except RuntimeError:  # the pool itself failed (its manager thread): a new one
            await self.close()
            future = self._started().schedule(
                function, args=args, kwargs=kwargs, timeout=self.timeout
            )
        try:
            # The answer waits ``timeout`` at most, queueing included; pebble's own timeout (or
            # the cancel below) stops a task still running.
            async with asyncio.timeout(self.timeout):
                return await asyncio.wrap_future(future)
        except (FutureTimeout, TimeoutError):
            future.cancel()  # type: ignore[no-untyped-call]
            reason = "timeout"
        except MemoryError:
            reason = "memory"
        except ProcessExpired as exc:
            reason = f"worker died ({exc.exitcode})"
        except Exception as exc:  # a library's failure must not fail the upload
            reason = type(exc).__name__
        except asyncio.CancelledError:
            future.cancel()  # type: ignore[no-untyped-call]  # the client went away
            raise
        log.warning(
            "media worker task failed",
            extra={"task": getattr(function, "__name__", "?"), "reason": reason},
        )
        return None

    async def probe(
        self, path: Path, file_type: FileType, *, everything: bool, head: bytes = b""
    ) -> media.Probe:
        """What the file holds (``media.probe``); empty for kinds that are not read, or when
        the worker could not tell. Unless ``everything`` is asked for (its ``metadata`` and
        ``embeddedMetadata``), a web image's size is read from its header in this process
        (``dimensions``: bounded, safe on any bytes; from ``head``, the file's first bytes,
        when they hold it), with no worker involved."""
        if not everything:
            found = dimensions.in_process(path, file_type, head)
            if found is not None:
                return found
        found = await self.run(
            media.probe,
            str(path),
            file_type.extension,
            file_type.kind.value,
            embedded=everything,
        )
        return found or {}

    async def render(
        self, source: Path, target: Path, plan: dict[str, Any], kind: Kind
    ) -> render.Rendered:
        """Write ``source`` transformed by ``plan`` to ``target`` (``render.render``); a worker
        that failed (time, memory) made nothing of a file it could not decode."""
        done = await self.run(render.render, str(source), str(target), plan, kind.value)
        return done or "undecodable"

    async def close(self) -> None:
        """Stop the workers (off the event loop: joining them may take a moment)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()  # type: ignore[no-untyped-call]
            await asyncio.to_thread(pool.join, 5)
