"""Delivering resized images, side by side in one run (#32): upload-auth's ``/files`` with
ImageKit's URL transformations, thumbor (PyPI, Pillow engine, file result storage), and the
Express + sharp (libvips) server people write, on the same source images and operations.

    python -m bench.delivery [--rounds 3] [--seconds 10]

Each round starts every contender afresh (empty caches), in an order alternating forward and
backward, then measures, per source and operation:

- **cold**: every request asks for a width not asked before (``wrk`` with ``delivery.lua``,
  4 connections): each is a decode, resize and encode;
- **warm**: one size, rendered once beforehand, asked again and again (32 connections): each
  is served from the contender's cache.

Each contender uses this machine's two cores its own way: upload-auth one server process and
its two media workers (the defaults), thumbor two processes (``--processes 2``), Node one
process with libvips' threads. Peak memory is the process tree's (every worker counted).
Sizes vary with the widths asked, so the table gives rates, p99 and peak memory only.
"""

import argparse
import base64
import io
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.harness import ROOT, Running, free_port, memory_kib, start, wrk
from bench.service import EXPRESS, install

BIN = Path(sys.executable).parent
SCRIPT = ROOT / "bench" / "delivery.lua"
THUMBOR = ROOT / "bench" / "contenders" / "thumbor"
PRIVATE = "private_" + secrets.token_urlsafe(24)

#: The sources: a 12-megapixel camera photo and a 2-megapixel one (JPEG, EXIF-oriented).
SOURCES = {"photo-12mp.jpg": (4000, 3000), "photo-2mp.jpg": (1600, 1200)}


@dataclass(frozen=True)
class Operation:
    name: str
    #: upload-auth's transformation, thumbor's path part, sharp's query; ``{w}`` the width.
    imagekit: str
    thumbor: str
    sharp: str
    width: int


OPERATIONS = (
    Operation("width 300, JPEG q80", "w-{w},f-jpg,q-80", "{w}x0/filters:quality(80)", "w={w}", 300),
    Operation(
        "800 x 600 cover, WebP q80",
        "w-{w},h-600,f-webp,q-80",
        "{w}x600/filters:format(webp):quality(80)",
        "w={w}&h=600&f=webp",
        800,
    ),
)


@dataclass
class Contender:
    name: str
    start: Callable[[Path, Path], Running]
    #: The path of a source's rendering for an operation (``{w}`` left in).
    path: Callable[[str, Operation], str]


def _upload_auth(sources: Path, work: Path) -> Running:
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "IMAGEKIT_PUBLIC_KEY": "public_bench",
        "IMAGEKIT_PRIVATE_KEY": PRIVATE,
        "UPLOAD_AUTH_STORAGE_DIR": str(work),
        "UPLOAD_AUTH_LOG_LEVEL": "warning",
    }
    server = start(
        [str(BIN / "upload-auth"), "upload-api", "--port", str(port)],
        port=port,
        env=env,
        ready="/readyz",
    )
    auth = "Basic " + base64.b64encode(f"{PRIVATE}:".encode()).decode()
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for name in SOURCES:
            answer = http.post(
                "/api/v1/files/upload",
                headers={"Authorization": auth},
                data={"fileName": name, "useUniqueFileName": "false"},
                files={"file": (name, (sources / name).read_bytes(), "image/jpeg")},
            )
            answer.raise_for_status()
    return server


def _thumbor(sources: Path, work: Path) -> Running:
    port = free_port()
    (work / "results").mkdir()
    conf = work / "thumbor.conf"
    conf.write_text(
        "LOADER = 'thumbor.loaders.file_loader'\n"
        f"FILE_LOADER_ROOT_PATH = {str(sources)!r}\n"
        "STORAGE = 'thumbor.storages.no_storage'\n"
        "RESULT_STORAGE = 'thumbor.result_storages.file_storage'\n"
        f"RESULT_STORAGE_FILE_STORAGE_ROOT_PATH = {str(work / 'results')!r}\n"
        "RESULT_STORAGE_STORES_UNSAFE = True\n"
        "RESULT_STORAGE_EXPIRATION_SECONDS = 0\n"
        "ALLOW_UNSAFE_URL = True\n"
        "RESPECT_ORIENTATION = True\n"
        "QUALITY = 80\n"
        "AUTO_WEBP = False\n"
    )
    thumbor = str(THUMBOR / ".venv" / "bin" / "thumbor")
    return start(
        [thumbor, "-p", str(port), "-i", "127.0.0.1", "-c", str(conf), "--processes", "2"],
        port=port,
        env={"PATH": os.environ["PATH"]},
        ready="/healthcheck",
    )


def _sharp(sources: Path, work: Path) -> Running:
    port = free_port()
    (work / "cache").mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "PORT": str(port),
        "BENCH_DIR": str(sources),
        "BENCH_CACHE": str(work / "cache"),
    }
    return start(["node", str(EXPRESS / "image_server.js")], port=port, env=env, ready="/healthz")


CONTENDERS = (
    Contender(
        "upload-auth",
        _upload_auth,
        lambda source, op: f"/files/{source}?tr={op.imagekit}",
    ),
    Contender("thumbor", _thumbor, lambda source, op: f"/unsafe/{op.thumbor}/{source}"),
    Contender("Express + sharp", _sharp, lambda source, op: f"/img/{source}?{op.sharp}"),
)


@dataclass
class Run:
    cold_per_s: float
    cold_p99_ms: float
    warm_per_s: float
    warm_p99_ms: float
    errors: int


def measure(
    contender: Contender, sources: Path, root: Path, seconds: int
) -> tuple[dict[tuple[str, str], Run], float]:
    """Every source and operation on a fresh start of ``contender``; and its peak memory."""
    work = Path(tempfile.mkdtemp(dir=root, prefix="work-"))
    server = contender.start(sources, work)
    runs = {}
    try:
        for source in SOURCES:
            for op in OPERATIONS:
                template = contender.path(source, op)
                # widths counted up from the operation's own: none asked twice in a run
                cold = wrk(
                    server.url + template.replace("{w}", str(op.width)),
                    seconds=seconds,
                    connections=4,
                    script=SCRIPT,
                    env={"BENCH_TEMPLATE": template, "BENCH_BASE": str(op.width)},
                )
                warm_url = server.url + template.replace("{w}", str(op.width))
                httpx.get(warm_url, timeout=60).raise_for_status()  # rendered and kept
                warm = wrk(warm_url, seconds=seconds, connections=32)
                runs[(source, op.name)] = Run(
                    cold.requests_per_s,
                    cold.p99_ms,
                    warm.requests_per_s,
                    warm.p99_ms,
                    cold.errors + warm.errors,
                )
        peak = memory_kib(server.process.pid, "VmHWM") / 1024
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return runs, peak


def sources_in(folder: Path) -> None:
    """The source photos: noise over a gradient (a photo's entropy), camera EXIF with the
    orientation upright, quality 90."""
    from PIL import Image

    for name, (width, height) in SOURCES.items():
        gradient = Image.linear_gradient("L").resize((width, height)).convert("RGB")
        noise = Image.effect_noise((width, height), 50).convert("RGB")
        picture = Image.blend(gradient, noise, 0.5)
        out = io.BytesIO()
        picture.save(out, "JPEG", quality=90)
        (folder / name).write_bytes(out.getvalue())


def install_thumbor() -> None:
    """thumbor in an environment of its own (it pins an older Pillow than upload-auth's)."""
    uv = str(ROOT / ".tools" / "bin" / "uv")
    venv = THUMBOR / ".venv"
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "VIRTUAL_ENV": str(venv)}
    if not venv.exists():
        subprocess.run([uv, "venv", "-q", "-p", sys.executable, str(venv)], check=True, env=env)
    requirements = str(THUMBOR / "requirements.txt")
    subprocess.run([uv, "pip", "install", "-q", "-r", requirements], check=True, env=env)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--only", nargs="*", help="contenders whose name contains one of these")
    parser.add_argument("--no-install", action="store_true")
    args = parser.parse_args()
    if not args.no_install:
        install()
        install_thumbor()
    chosen = [c for c in CONTENDERS if not args.only or any(o in c.name for o in args.only)]
    results: dict[str, list[dict[tuple[str, str], Run]]] = {}
    peaks: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sources = root / "sources"
        sources.mkdir()
        sources_in(sources)
        for round_ in range(args.rounds):
            for contender in chosen if round_ % 2 == 0 else chosen[::-1]:
                runs, peak = measure(contender, sources, root, args.seconds)
                results.setdefault(contender.name, []).append(runs)
                peaks.setdefault(contender.name, []).append(peak)
                for (source, op), run in runs.items():
                    print(
                        f"round {round_ + 1}: {contender.name}: {source}, {op}: {run}", flush=True
                    )
    report(results, peaks, args.rounds, args.seconds)


def report(
    results: dict[str, list[dict[tuple[str, str], Run]]],
    peaks: dict[str, list[float]],
    rounds: int,
    seconds: int,
) -> None:
    print(
        f"\nbench.delivery: {rounds} interleaved rounds, {seconds} s each way; medians of rounds"
        " (rounds in brackets); cold: 4 connections, every request a new size; warm: 32"
        " connections, one size kept"
    )
    print("| source | operation | contender | cold /s | cold p99 ms | warm /s | warm p99 ms |")
    print("|---|---|---|---:|---:|---:|---:|")
    for source in SOURCES:
        for op in OPERATIONS:
            for name, runs in results.items():
                cells = [run[(source, op.name)] for run in runs]
                cold = [c.cold_per_s for c in cells]
                warm = [c.warm_per_s for c in cells]
                print(
                    f"| {source} | {op.name} | {name} "
                    f"| {statistics.median(cold):,.1f} ({' / '.join(f'{v:,.1f}' for v in cold)}) "
                    f"| {statistics.median(c.cold_p99_ms for c in cells):,.0f} "
                    f"| {statistics.median(warm):,.0f} ({' / '.join(f'{v:,.0f}' for v in warm)}) "
                    f"| {statistics.median(c.warm_p99_ms for c in cells):,.1f} |"
                )
    print("\n| contender | peak memory, all processes (MiB) | errors |")
    print("|---|---:|---:|")
    for name, runs in results.items():
        errors = sum(run.errors for r in runs for run in r.values())
        print(f"| {name} | {max(peaks[name]):,.0f} | {errors} |")


if __name__ == "__main__":
    main()
