"""The upload API: one 100 MB upload against a bare Starlette endpoint that streams the raw body
to disk (the stack's floor), a 1 GB body against the 25 MB limit, and small uploads end to end.

    .venv/bin/python -m bench.uploads [--rounds 3]

MB/s and the server's peak RSS growth (VmHWM after minus VmRSS before) for each; medians of
interleaved rounds. End to end: a v2 credential from `upload-auth serve` (API key) and a 10 KB
upload to `upload-auth upload-api`, 16 at a time, for 10 seconds. Metadata: the median time of
one upload (server-side, one at a time) of real files (a 12-megapixel camera JPEG with EXIF, a
small PNG, a 5-second MP4) with the media workers on and off, side by side: the difference is
what reading the file costs an upload.
"""

import argparse
import asyncio
import base64
import hashlib
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench.harness import ROOT, UVICORN, Running, free_port, memory_kib, start

MIB = 1024 * 1024
BIN = Path(sys.executable).parent
PRIVATE = "private_" + secrets.token_urlsafe(24)
API_KEY = "uak_" + secrets.token_urlsafe(32)
ENV = {
    "PATH": os.environ["PATH"],
    "IMAGEKIT_PUBLIC_KEY": "public_bench",
    "IMAGEKIT_PRIVATE_KEY": PRIVATE,
    "UPLOAD_AUTH_ACCESS_LOG": "false",
    "UPLOAD_AUTH_MAX_FILE_SIZE": "200mb",
    "PYTHONPATH": str(ROOT),
}
BASIC = {"Authorization": "Basic " + base64.b64encode(f"{PRIVATE}:".encode()).decode()}


def upload_api(work: Path, max_size: str = "200mb", media_workers: int = 2) -> Running:
    port = free_port()
    return start(
        [str(BIN / "upload-auth"), "upload-api", "--port", str(port)],
        port=port,
        env={
            **ENV,
            "UPLOAD_AUTH_STORAGE_DIR": str(work / "store"),
            "UPLOAD_AUTH_MAX_FILE_SIZE": max_size,
            "UPLOAD_AUTH_MEDIA_WORKERS": str(media_workers),
        },
        ready="/readyz",
    )


def metadata_cost(work: Path, uploads: int) -> dict[str, dict[str, float]]:
    """Median milliseconds per upload of each real file, media workers on and off."""
    from tests.support import media_files

    files = {
        "12 MP camera JPEG": ("camera.jpg", media_files.camera_jpeg(4000, 3000)),
        "small PNG": ("icon.png", media_files.image("png", 64, 64)),
        "5 s MP4 (H.264 + AAC)": ("clip.mp4", media_files.mp4(5, 640, 360)),
    }
    found: dict[str, dict[str, list[float]]] = {label: {"on": [], "off": []} for label in files}
    servers = {"on": upload_api(work, media_workers=2), "off": upload_api(work, media_workers=0)}
    try:
        with httpx.Client(timeout=60) as http:
            for round_ in range(uploads):
                for label, (name, data) in files.items():
                    for mode in ("on", "off") if round_ % 2 == 0 else ("off", "on"):
                        started = time.perf_counter()
                        response = http.post(
                            servers[mode].url + "/api/v1/files/upload",
                            data={"fileName": name},
                            files={"file": (name, data)},
                            headers=BASIC,
                        )
                        assert response.status_code == 200, response.text
                        if round_ > 0:  # the first round starts the workers
                            found[label][mode].append((time.perf_counter() - started) * 1000)
    finally:
        for server in servers.values():
            server.stop()
    return {
        label: {mode: statistics.median(times) for mode, times in modes.items()}
        for label, modes in found.items()
    }


def raw_floor(work: Path) -> Running:
    port = free_port()
    return start(
        [sys.executable, *UVICORN, "bench.contenders.raw_upload:create", "--port", str(port)],
        port=port,
        env={**ENV, "BENCH_DIR": str(work)},
        ready="/healthz",
    )


def chunks(path: Path, head: bytes = b"", tail: bytes = b"") -> Iterator[bytes]:
    yield head
    with path.open("rb") as stream:
        while chunk := stream.read(MIB):
            yield chunk
    yield tail


def one_upload(
    server: Running, path: Path, multipart: bool, name: str = "big.txt", accepted_only: bool = False
) -> tuple[float, float]:
    """Seconds for one upload of ``path`` (as ``name``), and the server's peak RSS growth in
    MiB. ``accepted_only``: AssertionError unless the upload was stored."""
    before = memory_kib(server.process.pid)
    boundary = secrets.token_hex(8)
    if multipart:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="fileName"\r\n\r\n'
            f'{name}\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{name}"\r\n\r\n'
        ).encode()
        body = chunks(path, head, f"\r\n--{boundary}--\r\n".encode())
        headers = {**BASIC, "content-type": f"multipart/form-data; boundary={boundary}"}
        url = server.url + "/api/v1/files/upload"
    else:
        body, headers, url = chunks(path), {}, server.url + "/upload"
    started = time.perf_counter()
    response = httpx.post(url, content=body, headers=headers, timeout=120)
    seconds = time.perf_counter() - started
    assert response.status_code in ((200,) if accepted_only else (200, 400)), response.text
    return seconds, (memory_kib(server.process.pid, "VmHWM") - before) / 1024


async def end_to_end(seconds: float, service: Running, uploads: Running) -> float:
    data = b"x" * 10 * 1024
    done = 0
    deadline = time.perf_counter() + seconds
    auth = {"Authorization": f"Bearer {API_KEY}"}

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            grant = (
                await http.post(
                    service.url + "/v2/token",
                    headers=auth,
                    json={"fileName": "small.txt", "fileSize": len(data), "mimeType": "text/plain"},
                )
            ).json()
            response = await http.post(
                uploads.url + "/api/v2/files/upload",
                data={**grant["fields"], "token": grant["token"]},
                files={"file": ("small.txt", data)},
            )
            assert response.status_code == 200, response.text
            done += 1

    started = time.perf_counter()
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=32)) as http:
        await asyncio.gather(*(client(http) for _ in range(16)))
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--metadata-uploads", type=int, default=41)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {"floor": [], "upload-api": [], "oversize": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        big = work / "100mb.txt"
        big.write_bytes((b"abcdefghijklmnopqrstuvwxyz012345" * 32768) * 100)
        huge = work / "1gb.txt"
        with huge.open("wb") as stream:
            for _ in range(1024):
                stream.write(b"z" * MIB)
        for round_ in range(args.rounds):
            order = ["floor", "upload-api"] if round_ % 2 == 0 else ["upload-api", "floor"]
            for name in order:
                server = raw_floor(work) if name == "floor" else upload_api(work)
                try:
                    results[name].append(one_upload(server, big, multipart=name != "floor"))
                finally:
                    server.stop()
            server = upload_api(work, max_size="25mb")
            try:
                results["oversize"].append(one_upload(server, huge, multipart=True))
            finally:
                server.stop()
        digest = hashlib.sha256(API_KEY.encode()).hexdigest()
        uploads = upload_api(work)
        port = free_port()
        service = start(
            [str(BIN / "upload-auth"), "serve", "--port", str(port)],
            port=port,
            env={
                **ENV,
                "UPLOAD_AUTH_UPLOAD_API_URL": uploads.url,
                "UPLOAD_AUTH_CALLERS": json.dumps(
                    {"api_keys": [{"name": "b", "hash": f"sha256:{digest}"}]}
                ),
                "UPLOAD_AUTH_RATE_LIMIT_V2": "100000000/minute",
                "UPLOAD_AUTH_QUOTA_V2": "off",
            },
            ready="/healthz",
        )
        try:
            per_second = asyncio.run(end_to_end(10, service, uploads))
        finally:
            service.stop()
            uploads.stop()
        metadata = metadata_cost(work, args.metadata_uploads)
    print(
        f"{time.strftime('%Y-%m-%d')} · {os.cpu_count()} CPUs · medians of {args.rounds} "
        "interleaved rounds"
    )
    print("| upload | MB/s | peak RSS growth MiB | seconds per round |")
    print("|---|---:|---:|---|")
    rows = {}
    for name, label, size in (
        ("floor", "100 MB, bare Starlette raw body to disk (floor)", 100),
        ("upload-api", "100 MB, upload API (multipart, checks, store)", 100),
        ("oversize", "1 GB against the 25 MB limit (refused)", 0),
    ):
        seconds = statistics.median(s for s, _ in results[name])
        growth = statistics.median(g for _, g in results[name])
        rate = f"{size * MIB / seconds / 1e6:.0f}" if size else "-"
        rows[name] = {"seconds": seconds, "growth_mib": growth}
        print(
            f"| {label} | {rate} | {growth:.1f} | "
            f"{', '.join(f'{s:.2f}' for s, _ in results[name])} |"
        )
    ratio = rows["floor"]["seconds"] / rows["upload-api"]["seconds"]
    print(f"upload API: {ratio:.2f}x the floor's MB/s")
    print(f"end to end (v2 credential + 10 KB upload, 16 clients): {per_second:,.0f} uploads/s")
    print("| one upload, median ms | media workers on | off | metadata costs |")
    print("|---|---:|---:|---:|")
    for label, times in metadata.items():
        print(
            f"| {label} | {times['on']:.1f} | {times['off']:.1f} | "
            f"{times['on'] - times['off']:.1f} |"
        )
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "uploads.json").write_text(
        json.dumps(
            {
                "rows": rows,
                "ratio": ratio,
                "end_to_end_per_s": per_second,
                "metadata_ms": metadata,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
