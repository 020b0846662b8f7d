"""Transformed images for ``/files``: each transformation of each file version rendered once by
a media worker and kept on the storage beside the file (its derived files), within a size
limit.

Concurrent requests for the same rendering in one process wait for the one render (no
thundering herd); replicas that miss the cache at the same moment may each render it, and
the storage keeps one (the same bytes under the same name). Past ``delivery_cache_size`` the
oldest renders go, checked at most once a minute after a render.
"""

import asyncio
import functools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from app.core.imagekit.filetypes import ALLOWED, Kind
from app.core.imagekit.transformations import (
    FORMATS,
    THUMBNAIL,
    Plan,
    TransformationError,
    final_size,
    output_format,
)
from app.core.logs import get_logger
from app.upload_api import messages
from app.upload_api.storage import StoredFile, new_id

if TYPE_CHECKING:
    from app.upload_api.context import UploadContext

log = get_logger("upload_api")

#: Seconds between checks of the rendered files' total size.
TRIM_EVERY: Final = 60.0


@dataclass
class Renders:
    """This process's renders in progress, and when the cache was last trimmed."""

    running: dict[tuple[str, str], asyncio.Future[None]] = field(default_factory=dict)
    last_trim: float = 0.0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


@dataclass(frozen=True)
class Rendition:
    """What ``/files`` serves for a transformed request: the plan, its output format
    decided."""

    plan: Plan
    #: The format followed the request's ``Accept`` (``f-auto``): caches must vary on it.
    by_accept: bool

    @functools.cached_property
    def name(self) -> str:
        """Its derived file's name."""
        return self.plan.key()

    @property
    def media_type(self) -> str:
        return FORMATS[self.plan.format or "jpg"]

    @property
    def thumbnail(self) -> bool:
        """ImageKit's thumbnail: 404, not 400, for a file that has none (as it always was)."""
        return self.plan == THUMBNAIL


def choose(stored: StoredFile, plan: Plan, accept: str, *, auto_avif: bool) -> Rendition:
    """The rendering a request asks for (its plan, the output format decided), or the
    refusal: 404 for ImageKit's thumbnail of a file that has none, 400 for any other
    transformation of a file that cannot be transformed or past the bounds."""
    file_type = ALLOWED.get(stored.extension)
    media = stored.media or {}
    chosen = output_format(plan.format, stored.extension, accept, avif=auto_avif)
    if chosen is None:
        chosen = "png" if media.get("hasTransparency") else "jpg"
    rendition = Rendition(plan.with_format(chosen), by_accept=plan.format == "auto")
    if (
        file_type is None
        or not media.get("thumbnail")
        or not (
            file_type.kind is Kind.IMAGE or (file_type.kind is Kind.VIDEO and rendition.thumbnail)
        )
    ):
        raise messages.file_not_found() if rendition.thumbnail else messages.not_transformable()
    if stored.width and stored.height and file_type.kind is Kind.IMAGE:
        try:
            final_size(plan, (stored.width, stored.height))
        except TransformationError as exc:
            raise messages.bad_transformation(str(exc)) from None
    return rendition


async def render(context: "UploadContext", stored: StoredFile, rendition: Rendition) -> None:
    """Make ``rendition`` of ``stored`` unless it is kept already. One render per process at
    a time for the same one: the others wait for it, then serve what it kept (or, if it
    failed, try themselves and answer their own refusal)."""
    storage, renders = context.storage, context.renders
    key = (stored.version_id, rendition.name)
    while True:
        if await storage.has_derived(stored, rendition.name):
            return
        running = renders.running.get(key)
        if running is None:
            break
        await asyncio.wait([running])
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    renders.running[key] = done
    try:
        await _render(context, stored, rendition)
    finally:
        del renders.running[key]
        done.set_result(None)
    _trim_soon(context)


async def _render(context: "UploadContext", stored: StoredFile, rendition: Rendition) -> None:
    storage = context.storage
    file_type = ALLOWED[stored.extension]
    made = storage.spool.work / f"render-{new_id()}.{rendition.plan.format}"
    try:
        async with storage.local_copy(stored) as content:
            done = await context.media.render(
                content, made, rendition.plan.to_worker(), file_type.kind
            )
        if done == "unwritable":
            raise messages.storage_failed()
        if done == "too-large":
            raise messages.bad_transformation("The transformed image would be too large.")
        if done != "made":
            raise messages.file_not_found() if rendition.thumbnail else messages.not_transformable()
        await storage.keep_derived(stored, rendition.name, made)
    finally:
        made.unlink(missing_ok=True)


def _trim_soon(context: "UploadContext") -> None:
    """Check the cache's size in the background, at most once per ``TRIM_EVERY``."""
    renders = context.renders
    now = time.monotonic()
    if now - renders.last_trim < TRIM_EVERY:
        return
    renders.last_trim = now
    task = asyncio.get_running_loop().create_task(_trim(context))
    renders.tasks.add(task)
    task.add_done_callback(renders.tasks.discard)


async def _trim(context: "UploadContext") -> None:
    try:
        removed = await context.storage.trim_derived(context.delivery.cache_size)
    except OSError as exc:  # the store did not answer: the next render tries again
        context.renders.last_trim = 0.0
        log.warning("rendered files not trimmed", extra={"reason": type(exc).__name__})
        return
    if removed:
        log.info("rendered files trimmed", extra={"removed": removed})
