"""Bulk uploader vs a sequential one-at-a-time loop, same files, same upload API, same run.

    .venv/bin/python bench/bulk_upload.py [--files 300] [--size-kib 64] [--rounds 3]

For each added latency (0 ms: plain loopback; 20 ms: a stand-in for the round trip to a remote
upload API, added by ``bench/latency_app.py`` before each upload is handled), starts the upload
API on a free loopback port, then alternates (order reversed every other round) between the
naive program the seed describes (for each file: one POST, wait for the answer) and
``upload-auth upload --concurrency 8`` (a separate process, start-up included), and prints
medians and the ratio.
"""

import argparse
import base64
import json
import secrets
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_files(root: Path, count: int, size: int) -> int:
    alphabet = (string.ascii_letters + string.digits + "\n").encode()
    total = 0
    for i in range(count):
        path = root / f"batch-{i % 10}" / f"file-{i:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = bytes(secrets.choice(alphabet) for _ in range(256)) * (size // 256)
        path.write_bytes(data)
        total += len(data)
    return total


def sequential(files: list[Path], url: str, private_key: str, folder: str) -> float:
    auth = "Basic " + base64.b64encode(f"{private_key}:".encode()).decode()
    started = time.perf_counter()
    with httpx.Client(timeout=60) as http:
        for path in files:
            with path.open("rb") as stream:
                response = http.post(
                    url + "/api/v1/files/upload",
                    headers={"Authorization": auth},
                    data={"fileName": path.name, "folder": folder, "useUniqueFileName": "false"},
                    files={"file": (path.name, stream)},
                )
            response.raise_for_status()
    return time.perf_counter() - started


def bulk(
    source: Path, url: str, private_key: str, folder: str, work: Path, concurrency: int
) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            str(BIN / "upload-auth"),
            "upload",
            str(source),
            "--to",
            url,
            "--folder",
            folder,
            "--concurrency",
            str(concurrency),
            "--no-progress",
            "--manifest",
            str(work / f"manifest{folder.replace('/', '-')}.jsonl"),
        ],
        env={"IMAGEKIT_PRIVATE_KEY": private_key, "PATH": str(BIN)},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def measure(
    work: Path, files: list[Path], args: argparse.Namespace, latency_ms: int
) -> dict[str, list[float]]:
    private_key = "private_" + secrets.token_urlsafe(24)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.latency_app:create",
            "--factory",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
        ],
        env={
            "IMAGEKIT_PUBLIC_KEY": "public_bench",
            "IMAGEKIT_PRIVATE_KEY": private_key,
            "UPLOAD_AUTH_STORAGE_DIR": str(work / f"store-{latency_ms}"),
            "UPLOAD_AUTH_ACCESS_LOG": "false",
            "BENCH_LATENCY_MS": str(latency_ms),
            "PYTHONPATH": str(ROOT),
            "PATH": str(BIN),
        },
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                httpx.get(url + "/healthz")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        times: dict[str, list[float]] = {"sequential": [], "bulk": []}
        for round_ in range(args.rounds):
            order = ["sequential", "bulk"] if round_ % 2 == 0 else ["bulk", "sequential"]
            for name in order:
                folder = f"/{name}-{latency_ms}-{round_}"
                times[name].append(
                    sequential(files, url, private_key, folder)
                    if name == "sequential"
                    else bulk(work / "src", url, private_key, folder, work, args.concurrency)
                )
    finally:
        server.terminate()
        server.wait()
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--size-kib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency-ms", type=int, nargs="+", default=[0, 20])
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        total = make_files(work / "src", args.files, args.size_kib * 1024)
        files = sorted((work / "src").rglob("*.txt"))
        mib = total / 2**20
        print(
            f"{args.files} files x {args.size_kib} KiB ({mib:.1f} MiB), upload API on "
            f"loopback, medians of {args.rounds} interleaved rounds"
        )
        print("| added latency | program | files/s | MiB/s | seconds (per round) |")
        print("|---:|---|---:|---:|---|")
        for latency in args.latency_ms:
            times = measure(work, files, args, latency)
            rows = {}
            for name, values in times.items():
                median = statistics.median(values)
                rows[name] = {
                    "seconds": round(median, 3),
                    "files_per_s": round(args.files / median, 1),
                    "mib_per_s": round(mib / median, 2),
                    "rounds": [round(v, 3) for v in values],
                }
            ratio = rows["bulk"]["files_per_s"] / rows["sequential"]["files_per_s"]
            for name, label in (
                ("sequential", "sequential loop, one POST at a time"),
                ("bulk", f"`upload-auth upload --concurrency {args.concurrency}` ({ratio:.2f}x)"),
            ):
                row = rows[name]
                print(
                    f"| {latency} ms | {label} | {row['files_per_s']} | {row['mib_per_s']} | "
                    f"{row['seconds']} ({', '.join(map(str, row['rounds']))}) |",
                    flush=True,
                )
            results.append({"latency_ms": latency, "rows": rows, "ratio": ratio})
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bulk_upload.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
