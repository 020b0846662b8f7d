"""The run: plan, skip what the manifest has, upload N at a time, show progress, report.

Exit status: 0 when every file that should be uploaded was (files the policy refuses are
reported, not counted as failures), 1 when some failed, 130 when interrupted (Ctrl-C or
SIGTERM: no new uploads start, the ones in flight are abandoned, the manifest keeps what
finished, so a rerun carries on).
"""

import asyncio
import contextlib
import hashlib
import json
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from app.bulk import transfer
from app.bulk.manifest import Manifest, sha256_of
from app.bulk.plan import LocalFile, walk
from app.core.imagekit.rules import PlanLimits, clean_name, format_size


@dataclass(frozen=True)
class Options:
    paths: Sequence[Path]
    to: str
    folder: str
    concurrency: int
    credentials: transfer.Credentials
    limits: PlanLimits
    types: frozenset[str] | None
    manifest: Path
    report: Path | None
    dry_run: bool
    retries: int
    progress: bool
    timeout: float = 300.0


@dataclass
class Outcome:
    uploaded: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    retries: int = 0
    interrupted: bool = False
    bytes_uploaded: int = 0
    #: Why the run stopped early: an answer every file would get (see ``transfer.Fatal``).
    stopped: str | None = None

    @property
    def exit_status(self) -> int:
        if self.interrupted:
            return 130
        return 1 if self.failed or self.stopped else 0


def default_manifest(paths: Sequence[Path], to: str, folder: str) -> Path:
    """One manifest per (destination, folder, sources), so a rerun finds its own."""
    key = "\n".join([to, folder, *sorted(str(p.resolve()) for p in paths)])
    return Path(".upload-auth") / f"manifest-{hashlib.sha256(key.encode()).hexdigest()[:12]}.jsonl"


class _Display:
    """A rich progress bar on a terminal (files, bytes, rate, ETA); one plain line per event
    otherwise."""

    def __init__(self, enabled: bool, total_files: int, total_bytes: int, out: TextIO) -> None:
        self.out = out
        self.bar: Progress | None = None
        self.files_done, self.files_total = 0, total_files
        if enabled:
            self.bar = Progress(
                TextColumn("[bold]uploading"),
                BarColumn(),
                TextColumn("{task.fields[files]} files"),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(file=out),
            )
            self.task: TaskID = self.bar.add_task(
                "upload", total=total_bytes, files=f"0/{total_files}"
            )
            self.bar.start()

    def bytes_moved(self, count: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=count)

    def file_done(self, message: str, *, failed: bool = False) -> None:
        """A file finished; a failure's line is printed above the bar too."""
        self.files_done += 1
        if self.bar is not None:
            self.bar.update(self.task, files=f"{self.files_done}/{self.files_total}")
            if failed:
                self.bar.console.print(message)
        else:
            print(message, file=self.out, flush=True)

    def note(self, message: str) -> None:
        if self.bar is not None:
            self.bar.console.print(message)
        else:
            print(message, file=self.out, flush=True)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


async def _run(options: Options, out: TextIO) -> Outcome:
    outcome = Outcome()
    files, refused = walk(options.paths, options.folder, options.limits, options.types)
    outcome.refused = [{"path": str(r.path), "reason": r.reason} for r in refused]
    manifest = Manifest(options.manifest, writable=not options.dry_run)
    todo: list[LocalFile] = []
    for file in files:
        if manifest.done(file):
            outcome.skipped.append(str(file.path))
        else:
            todo.append(file)
    for item in outcome.refused:
        print(f"refused  {item['path']}: {item['reason']}", file=out, flush=True)
    if options.dry_run:
        for path in outcome.skipped:
            print(f"skip     {path} (uploaded by an earlier run)", file=out)
        unique = isinstance(options.credentials, transfer.ClientV2)
        for file in todo:
            stored = f"{file.folder.rstrip('/')}/{clean_name(file.name)}"
            suffix = " (the profile may add a unique suffix)" if unique else ""
            print(
                f"would upload  {file.path} -> {stored} ({format_size(file.size)}){suffix}",
                file=out,
            )
        print(
            f"dry run: {len(todo)} would upload ({format_size(sum(f.size for f in todo))}), "
            f"{len(outcome.skipped)} skipped, {len(outcome.refused)} refused by the policy; "
            "nothing was sent and nothing written",
            file=out,
        )
        return outcome

    display = _Display(options.progress, len(todo), sum(f.size for f in todo), out)
    queue: asyncio.Queue[LocalFile] = asyncio.Queue()
    for file in todo:
        queue.put_nowait(file)
    stop = asyncio.Event()

    def moved(count: int) -> None:
        outcome.bytes_uploaded += count
        display.bytes_moved(count)

    def retried(file: LocalFile) -> Callable[[str], None]:
        def note(reason: str) -> None:
            outcome.retries += 1
            display.note(f"retry    {file.path}: {reason}")

        return note

    async def worker(http: httpx.AsyncClient) -> None:
        while not stop.is_set():
            try:
                file = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                digest = (
                    sha256_of(file.path)
                    if file.size <= 1024 * 1024  # no thread hop
                    else await asyncio.to_thread(sha256_of, file.path)
                )
                result = await transfer.upload(
                    http,
                    options.credentials,
                    file,
                    retries=options.retries,
                    on_bytes=moved,
                    on_retry=retried(file),
                )
            except transfer.Fatal as exc:
                outcome.failed.append({"path": str(file.path), "error": str(exc)})
                if outcome.stopped is None:
                    outcome.stopped = str(exc)
                    display.note(f"stopped: {exc}")
                stop.set()
                return
            except transfer.Refusal as exc:
                outcome.failed.append({"path": str(file.path), "error": str(exc)})
                display.file_done(f"refused  {file.path}: {exc}", failed=True)
            except (transfer.Transient, httpx.HTTPError, OSError, ValueError) as exc:
                outcome.failed.append(
                    {"path": str(file.path), "error": f"{type(exc).__name__}: {exc}"}
                )
                display.file_done(f"failed   {file.path}: {exc}", failed=True)
            else:
                entry = manifest.record(file, digest, result)
                outcome.uploaded.append(
                    {
                        "path": entry.path,
                        "fileId": entry.file_id,
                        "url": entry.url,
                        "size": entry.size,
                    }
                )
                display.file_done(f"uploaded {file.path} -> {entry.url}")

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    limits = httpx.Limits(max_connections=options.concurrency)
    try:
        async with httpx.AsyncClient(timeout=options.timeout, limits=limits) as http:
            if todo:
                try:
                    await transfer.preflight(http, options.credentials)
                except transfer.Fatal as exc:
                    outcome.stopped = str(exc)
                    display.note(f"stopped before the first file: {exc}")
                    return outcome
            workers = [asyncio.create_task(worker(http)) for _ in range(options.concurrency)]
            stopper = asyncio.create_task(stop.wait())
            done = asyncio.gather(*workers)
            racing: set[asyncio.Future[Any]] = {done, stopper}
            await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():
                outcome.interrupted = outcome.stopped is None
                for task in workers:
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await done
            stopper.cancel()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        display.stop()
        manifest.close()
    return outcome


def summary(outcome: Outcome, seconds: float) -> str:
    return (
        f"{len(outcome.uploaded)} uploaded, {len(outcome.skipped)} skipped (uploaded before), "
        f"{len(outcome.refused)} refused by the policy, {len(outcome.failed)} failed, "
        f"{outcome.retries} retries; {outcome.bytes_uploaded} bytes in {seconds:.1f} s"
        + (" (interrupted: rerun to carry on)" if outcome.interrupted else "")
        + (" (stopped early: see above)" if outcome.stopped else "")
    )


def run(options: Options, out: TextIO = sys.stdout) -> int:
    """Do the whole run; returns the exit status."""
    started = time.time()
    outcome = asyncio.run(_run(options, out))
    seconds = time.time() - started
    if not options.dry_run:
        print(summary(outcome, seconds), file=out, flush=True)
    if options.report is not None:
        options.report.write_text(
            json.dumps(
                {
                    "to": options.to,
                    "folder": options.folder,
                    "started_at": started,
                    "seconds": round(seconds, 3),
                    "interrupted": outcome.interrupted,
                    "stopped": outcome.stopped,
                    "dry_run": options.dry_run,
                    "totals": {
                        "uploaded": len(outcome.uploaded),
                        "skipped": len(outcome.skipped),
                        "refused": len(outcome.refused),
                        "failed": len(outcome.failed),
                        "retries": outcome.retries,
                        "bytes": outcome.bytes_uploaded,
                    },
                    "uploaded": outcome.uploaded,
                    "skipped": outcome.skipped,
                    "refused": outcome.refused,
                    "failed": outcome.failed,
                },
                indent=2,
            )
        )
    return outcome.exit_status
