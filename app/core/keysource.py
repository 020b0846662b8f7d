"""The live key ring: reloaded without a restart when its files change, or on SIGHUP.

Keys mounted from files (``IMAGEKIT_*_FILE``, ``[[keys]] private_key_file``) and the config file
(which lists the pairs and names the signing one) are watched: a change in any of them, or a
SIGHUP, re-reads the settings and swaps the key ring in one assignment, so a request sees the
old ring or the new one, never a mix. A reload that fails (a half-written file, a bad key)
keeps the ring that works and logs why. This is what makes rotation a file edit: add the new
pair, switch signing to it, remove the old pair once its credentials have expired.
"""

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

from pydantic import ValidationError

from app.core.keys import KeyRing
from app.core.logs import get_logger

log = get_logger("keys")
POLL_SECONDS: Final = 2.0

Fingerprint = tuple[tuple[int, int, int] | None, ...]


def _fingerprint(paths: tuple[Path, ...]) -> Fingerprint:
    """What a change looks like: inode, size and mtime of each file (following symlinks, as
    Kubernetes swaps a mounted secret's ``..data`` link)."""
    result: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            result.append(None)
        else:
            result.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(result)


class KeySource:
    """Holds the current KeyRing; ``load`` builds a fresh one from the settings' sources."""

    def __init__(
        self,
        ring: KeyRing,
        load: Callable[[], KeyRing] | None = None,
        watch: tuple[Path, ...] = (),
        on_change: Callable[[KeyRing], None] | None = None,
    ) -> None:
        self.ring = ring
        self.load = load
        self.watch = watch
        self.on_change = on_change
        self._seen = _fingerprint(watch)
        self._watchers = 0  # apps sharing this source (upload-auth dev): one watcher for all

    def reload(self) -> bool:
        """Re-read the keys now; True if the ring changed."""
        if self.load is None:
            return False
        try:
            ring = self.load()
        except (ValueError, OSError, ValidationError) as exc:
            log.error(
                "key reload failed; keeping the current keys",
                extra={"error": str(exc).splitlines()[0][:300]},
            )
            return False
        changed = [(p.public_key, p.private_key) for p in ring] != [
            (p.public_key, p.private_key) for p in self.ring
        ] or ring.signing.public_key != self.ring.signing.public_key
        if changed:
            self.ring = ring
            if self.on_change is not None:
                self.on_change(ring)
            log.info(
                "keys reloaded",
                extra={
                    "public_keys": [pair.public_key for pair in ring],
                    "signing_key": ring.signing.public_key,
                },
            )
        return changed

    def check(self) -> bool:
        """Reload if a watched file changed since the last look."""
        now = _fingerprint(self.watch)
        if now == self._seen:
            return False
        self._seen = now
        return self.reload()

    @asynccontextmanager
    async def watching(self, interval: float = POLL_SECONDS) -> AsyncIterator[None]:
        """While open: poll the watched files, and reload on SIGHUP."""
        self._watchers += 1
        if self.load is None or self._watchers > 1:
            try:
                yield
            finally:
                self._watchers -= 1
            return
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, self.reload)

        async def poll() -> None:
            while True:
                await asyncio.sleep(interval)
                self.check()

        task = asyncio.create_task(poll()) if self.watch else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGHUP)
            self._watchers -= 1
