"""Uploads side by side with the servers people write themselves, in one run.

    .venv/bin/python -m bench.upload_speed [--rounds 3] [--seconds 8] [--only NAME ...]
        [--before REF]   # also the upload API as it was at a git commit (before/after)

Each contender is one process storing to local disk, driven by wrk (32 connections, one
thread) with multipart uploads as browsers send them: a camera JPEG of 20 KB and one of 1 MB.
The contenders:

- floor: a bare Starlette endpoint streaming the raw body to a file (the stack's floor);
- naive FastAPI: ``UploadFile`` copied to a file (``bench/contenders/naive_upload.py``);
- Express + multer: multer's disk storage (``bench/contenders/express/upload_server.js``);
- upload-auth's upload API with the private key (Basic auth), media workers off; with its
  defaults; and with its defaults and v2 credentials (single-use JWTs made beforehand, one per
  request).

Rounds are interleaved (each round runs every contender once, forward and backward in turn, so
that a disk slowing down over the run favours nobody; the 20 KB runs' files are kept until the
last round, as removing them slows the next contender); the table
gives the median of the rounds, each round's figure, p50/p99 latency, CPU time per upload of
the server's process tree (its media workers included) and its peak memory. Then one 200 MB
upload at a time, the floor against upload-auth's defaults: MB/s and peak memory growth.
Results go to ``bench/results/upload_speed.json``.

Each run stores into a directory of its own on a part of the disk where making a file is not
slowed by files removed minutes before (``fresh_store``): on ext4 without a journal (this VM's
disk) the kernel skips every recently freed inode when it makes a file (``recently_deleted``),
and after a test run or an earlier benchmark had removed many files, making one file in that
part of the disk cost 400-900 µs instead of 20-30 µs. Which contender landed there was luck,
and it decided the ratios. The table gives each run's cost of making a file where it stored.
"""

import argparse
import base64
import fcntl
import json
import os
import secrets
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.harness import ROOT, UVICORN, Running, cpu_seconds, free_port, memory_kib, start, wrk
from bench.service import EXPRESS, install
from bench.uploads import MIB, one_upload, raw_floor, upload_api

BIN = Path(sys.executable).parent
SCRIPT = ROOT / "bench" / "upload.lua"
PUBLIC = "public_bench"
PRIVATE = "private_" + secrets.token_urlsafe(24)
BASIC = "Basic " + base64.b64encode(f"{PRIVATE}:".encode()).decode()
CONNECTIONS = 32
#: Single-use credentials made per second of a run: above the fastest contender's rate.
TOKENS_PER_SECOND = {"20 KB": 9000, "1 MB": 1500}


@dataclass(frozen=True)
class Contender:
    name: str
    path: str
    #: Start the server storing into the directory.
    start: Callable[[Path], Running]
    auth: str = ""
    v2: bool = False


@dataclass
class Run:
    per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_ms: float
    peak_mib: float
    #: What making an empty file cost where this run stored (``fresh_store``), µs.
    create_us: float = 0.0


def _python(module: str) -> Callable[[Path], Running]:
    def run(store: Path) -> Running:
        port = free_port()
        return start(
            [sys.executable, *UVICORN, module, "--port", str(port)],
            port=port,
            env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "BENCH_DIR": str(store)},
            ready="/healthz",
        )

    return run


def _express(store: Path) -> Running:
    port = free_port()
    return start(
        ["node", str(EXPRESS / "upload_server.js")],
        port=port,
        env={"PATH": os.environ["PATH"], "PORT": str(port), "BENCH_DIR": str(store)},
        ready="/healthz",
    )


def _upload_auth(media_workers: int | None, tree: Path | None = None) -> Callable[[Path], Running]:
    """upload-auth's upload API, from this checkout or (``tree``) another one's code."""

    def run(store: Path) -> Running:
        port = free_port()
        env = {
            "PATH": os.environ["PATH"],
            "IMAGEKIT_PUBLIC_KEY": PUBLIC,
            "IMAGEKIT_PRIVATE_KEY": PRIVATE,
            "UPLOAD_AUTH_STORAGE_DIR": str(store),
        }
        if media_workers is not None:
            env["UPLOAD_AUTH_MEDIA_WORKERS"] = str(media_workers)
        argv = [str(BIN / "upload-auth")]
        if tree is not None:
            env["PYTHONPATH"] = str(tree)
            argv = [sys.executable, "-m", "app.cli"]
        return start(
            [*argv, "upload-api", "--port", str(port)],
            port=port,
            env=env,
            ready="/readyz",
            cwd=tree or ROOT,
        )

    return run


CONTENDERS = (
    Contender("floor", "/upload", _python("bench.contenders.raw_upload:create")),
    Contender("naive FastAPI", "/upload", _python("bench.contenders.naive_upload:create")),
    Contender("Express + multer", "/upload", _express),
    Contender("upload-auth, media off", "/api/v1/files/upload", _upload_auth(0), BASIC),
    Contender("upload-auth, defaults", "/api/v1/files/upload", _upload_auth(None), BASIC),
    Contender("upload-auth, defaults, v2", "/api/v2/files/upload", _upload_auth(None), v2=True),
)


def v2_tokens(path: Path, name: str, count: int) -> None:
    """``count`` single-use v2 credentials for uploads of ``name``, one per line."""
    from app.core.credentials import issue_v2
    from app.core.keys import KeyPair

    pair = KeyPair(PUBLIC, PRIVATE.encode())
    now = int(time.time())
    with path.open("w") as out:
        for _ in range(count):
            out.write(f"token\t{issue_v2(pair, {'fileName': name}, now=now, ttl=3600)}\n")


#: ``FS_IOC_GETFLAGS``, ``FS_IOC_SETFLAGS`` and ext4's ``FS_TOPDIR_FL`` (``chattr +T``): the
#: folders made in such a folder are spread over the disk as top-level ones are.
_GET_FLAGS, _SET_FLAGS, _TOP_DIR = 0x80086601, 0x40086602, 0x00020000
#: Making a file costs this much or less where no files were removed recently (µs).
_FRESH_US = 60.0


def spread(folder: Path) -> None:
    """Folders made in ``folder`` go to new parts of the disk (where the filesystem can)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        flags = struct.unpack("l", fcntl.ioctl(fd, _GET_FLAGS, struct.pack("l", 0)))[0]
        fcntl.ioctl(fd, _SET_FLAGS, struct.pack("l", flags | _TOP_DIR))
    except OSError:
        pass  # not ext4: nothing to spread
    finally:
        os.close(fd)


def _create_cost(folder: Path, files: int = 20) -> float:
    """What making an empty file costs in ``folder``, in µs (the files stay: removing them
    would slow the next file made there)."""
    probe = folder / "probe"
    probe.mkdir()
    started = time.perf_counter()
    for n in range(files):
        os.close(os.open(probe / str(n), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return (time.perf_counter() - started) * 1e6 / files


def fresh_store(work: Path) -> tuple[Path, float]:
    """A new store directory where making a file is not slowed by recent removals (the first
    of up to eight tried, else the least slowed), and what making a file costs there."""
    tried = []
    for _ in range(8):
        store = Path(tempfile.mkdtemp(dir=work, prefix="store-"))
        cost = _create_cost(store)
        if cost <= _FRESH_US:
            return store, cost
        tried.append((cost, store))
    cost, store = min(tried)
    return store, cost


def measure(
    contender: Contender, work: Path, image: Path, seconds: int, size: str, *, keep: bool
) -> Run:
    """One run of one contender into a new directory, removed afterwards unless ``keep``."""
    store, create_us = fresh_store(work)
    server = contender.start(store)
    try:
        env = {"BENCH_FILE": str(image), "BENCH_NAME": image.name, "BENCH_AUTH": contender.auth}
        warm_up = dict(env)
        if contender.v2:  # each run its own credentials: wrk starts again from the first
            for run, length in ((warm_up, 2), (env, seconds + 1)):
                run["BENCH_CREDS"] = str(work / f"tokens-{length}")
                v2_tokens(Path(run["BENCH_CREDS"]), image.name, TOKENS_PER_SECOND[size] * length)
        url = server.url + contender.path
        wrk(url, seconds=1, connections=CONNECTIONS, script=SCRIPT, env=warm_up)
        cpu = cpu_seconds(server.process.pid)
        result = wrk(url, seconds=seconds, connections=CONNECTIONS, script=SCRIPT, env=env)
        cpu = cpu_seconds(server.process.pid) - cpu
        peak = memory_kib(server.process.pid, "VmHWM") / 1024
    finally:
        server.stop()
        if not keep:
            shutil.rmtree(store, ignore_errors=True)
        os.sync()  # the next contender does not pay for this one's writes
    return Run(
        per_s=result.requests_per_s,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        errors=result.errors,
        cpu_ms=cpu * 1000 / max(1, result.requests),
        peak_mib=peak,
        create_us=create_us,
    )


def streaming(work: Path, rounds: int) -> dict[str, list[tuple[float, float]]]:
    """Seconds and peak memory growth of one 200 MB upload, the floor against the upload API
    (``bench.uploads``'s: the defaults without the access log)."""
    big = work / "200mb.txt"
    with big.open("wb") as stream:
        for _ in range(200):
            stream.write(b"abcdefghijklmnopqrstuvwxyz012345" * (MIB // 32))
    found: dict[str, list[tuple[float, float]]] = {"floor": [], "upload-auth": []}
    for round_ in range(rounds):
        for name in ("floor", "upload-auth") if round_ % 2 == 0 else ("upload-auth", "floor"):
            server = raw_floor(work) if name == "floor" else upload_api(work, max_size="300mb")
            try:
                found[name].append(one_upload(server, big, multipart=name != "floor"))
            finally:
                server.stop()
    big.unlink()
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="an even number runs each contender early and late alike (forward, then backward)",
    )
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--only", nargs="*", help="contenders whose name contains one of these")
    parser.add_argument("--no-install", action="store_true")
    parser.add_argument(
        "--before", metavar="REF", help="also run the upload API as it was at this git commit"
    )
    parser.add_argument("--no-streaming", action="store_true")
    parser.add_argument("--sizes", nargs="*", default=["20 KB", "1 MB"], choices=["20 KB", "1 MB"])
    args = parser.parse_args()
    if not args.no_install:
        install()
    contenders = list(CONTENDERS)
    before = None
    if args.before:
        before = Path(tempfile.mkdtemp(prefix="upload-auth-before-"))
        subprocess.run(["git", "worktree", "add", "--detach", str(before), args.before], check=True)
        contenders += [
            Contender(
                f"{args.before}, defaults",
                "/api/v1/files/upload",
                _upload_auth(None, before),
                BASIC,
            ),
            Contender(
                f"{args.before}, defaults, v2",
                "/api/v2/files/upload",
                _upload_auth(None, before),
                v2=True,
            ),
        ]
    chosen = [c for c in contenders if not args.only or any(o in c.name for o in args.only)]
    from tests.support import media_files

    results: dict[str, dict[str, list[Run]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        spread(work)
        images = {"20 KB": media_files.photo(20_000), "1 MB": media_files.photo(MIB)}
        for size in args.sizes:
            data = images[size]
            image = work / f"photo-{size.replace(' ', '').lower()}.jpg"
            image.write_bytes(data)
            # Forward, then backward: the disk slows as it fills and frees (the first runs of
            # a fresh disk are the fastest), and alternating the order gives every contender
            # early and late places alike.
            keep = size == "20 KB"  # removing tens of thousands of files slows the next run
            for round_ in range(args.rounds):
                for contender in chosen if round_ % 2 == 0 else chosen[::-1]:
                    run = measure(contender, work, image, args.seconds, size, keep=keep)
                    results.setdefault(size, {}).setdefault(contender.name, []).append(run)
                    print(f"{size} round {round_ + 1}: {contender.name}: {run}", flush=True)
            for store in work.glob("store-*"):
                shutil.rmtree(store, ignore_errors=True)
            os.sync()
        big = {} if args.no_streaming else streaming(work, args.rounds)
    if before is not None:
        subprocess.run(["git", "worktree", "remove", "--force", str(before)], check=True)
    report(results, big, args.rounds)


def report(
    results: dict[str, dict[str, list[Run]]],
    big: dict[str, list[tuple[float, float]]],
    rounds: int,
) -> None:
    print(f"\n{time.strftime('%Y-%m-%d')} · {os.cpu_count()} CPUs · medians of {rounds} rounds")
    header = "uploads/s | rounds | p50 ms | p99 ms | CPU ms/upload | peak MiB | file made µs"
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for size, contenders in results.items():
        print(f"\n| {size} JPEG | {header} |")
        print("|---|---:|---|---:|---:|---:|---:|---|")
        for name, runs in contenders.items():
            row = {
                field: statistics.median(getattr(r, field) for r in runs)
                for field in ("per_s", "p50_ms", "p99_ms", "cpu_ms", "peak_mib")
            }
            row["errors"] = sum(r.errors for r in runs)
            summary.setdefault(size, {})[name] = row
            print(
                f"| {name} | {row['per_s']:,.0f} | "
                f"{' / '.join(f'{r.per_s:,.0f}' for r in runs)} | {row['p50_ms']:.1f} | "
                f"{row['p99_ms']:.1f} | {row['cpu_ms']:.2f} | {row['peak_mib']:.0f} | "
                f"{' / '.join(f'{r.create_us:.0f}' for r in runs)} |"
                + (f" {row['errors']} errors" if row["errors"] else "")
            )
        express = summary[size].get("Express + multer")
        if express:
            for name, row in summary[size].items():
                if name.startswith("upload-auth"):
                    print(
                        f"{size}: {name}: {row['per_s'] / express['per_s']:.2f}x Express + multer"
                    )
    if big:
        print("\n| 200 MB, one at a time | MB/s | peak RSS growth MiB |")
        print("|---|---:|---:|")
        for name, uploads in big.items():
            seconds = statistics.median(s for s, _ in uploads)
            growth = statistics.median(g for _, g in uploads)
            print(f"| {name} | {200 * MIB / seconds / 1e6:.0f} | {growth:.1f} |")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    raw = {
        size: {n: [asdict(r) for r in runs] for n, runs in c.items()} for size, c in results.items()
    }
    (out / "upload_speed.json").write_text(
        json.dumps({"summary": summary, "runs": raw, "streaming_200mb": big}, indent=2)
    )


if __name__ == "__main__":
    main()
