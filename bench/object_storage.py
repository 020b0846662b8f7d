"""Uploads into an S3-compatible store, against the floor of its client writing the same bytes
itself, in one run.

    .venv/bin/python -m bench.object_storage [--rounds 3] [--seconds 8] [--big-mb 1024]

The store is moto's S3-wire server on loopback (a Python server: it is the bound for both
contenders alike, which is why they run side by side). Contenders, 1 MB camera JPEGs, 16 at a
time:

- floor: obstore (the client the upload API uses) putting the same bytes under new keys from
  one Python process, 16 puts at a time;
- upload-auth: the upload API with ``UPLOAD_AUTH_STORAGE_BACKEND=s3``, driven by wrk (16
  connections) with multipart uploads and the private key, its defaults otherwise.

Rounds alternate the order. Reported: uploads/s (median of the rounds, each round's figure),
CPU per upload of the process tree, peak memory. Then one video of ``--big-mb`` MB at a time:
the floor puts the file from disk (multipart, the same part size and concurrency as the upload
API's defaults), upload-auth receives it into its spool and publishes it; seconds, MB/s and
peak memory growth (memory flat: bounded by the parts in flight, whatever the size). Results
go to ``bench/results/object_storage.json``.
"""

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import ROOT, cpu_seconds, free_port, memory_kib, start, wrk
from bench.uploads import BASIC, ENV, MIB, one_upload
from tests.support.buckets import S3Server

SCRIPT = ROOT / "bench" / "upload.lua"
CONNECTIONS = 16
PART_SIZE = 8 * MIB
PART_CONCURRENCY = 4


def floor_worker(endpoint: str, bucket: str, path: str, seconds: float, big: bool) -> None:
    """In its own process: puts for ``seconds`` (or one big put); prints JSON."""
    import obstore
    from obstore.store import S3Store

    made = S3Store(
        bucket,
        endpoint=endpoint,
        region="us-east-1",
        access_key_id="bench",
        secret_access_key="bench-secret",  # noqa: S106 - moto checks no signature
        client_options={"allow_http": True},
    )
    stores = [made]  # dropped before the interpreter's finalisation (its runtime's threads)
    data = Path(path).read_bytes() if not big else b""
    done = 0

    async def run() -> float:
        nonlocal done
        if big:
            started = time.perf_counter()
            await obstore.put_async(
                stores[0],
                "floor/big",
                Path(path),
                chunk_size=PART_SIZE,
                max_concurrency=PART_CONCURRENCY,
            )
            return time.perf_counter() - started
        deadline = time.monotonic() + seconds

        async def putter(index: int) -> None:
            nonlocal done
            n = 0
            while time.monotonic() < deadline:
                await obstore.put_async(stores[0], f"floor/{index}/{n}", data)
                n += 1
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(putter(i) for i in range(CONNECTIONS)))
        return time.perf_counter() - started

    before = resource.getrusage(resource.RUSAGE_SELF)
    rss_before = memory_kib(os.getpid())
    elapsed = asyncio.run(run())
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    peak = after.ru_maxrss
    stores.clear()
    del made
    print(  # then out at once: the client's runtime may abort in the interpreter's finalisation
        json.dumps(
            {
                "seconds": elapsed,
                "puts": done,
                "cpu_s": cpu,
                "peak_mib": peak / 1024,
                "growth_mib": (peak - rss_before) / 1024,
            }
        ),
        flush=True,
    )
    os._exit(0)


def floor(endpoint: str, bucket: str, path: Path, seconds: float, big: bool) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            *("-m", "bench.object_storage", "--floor-worker"),
            *(endpoint, bucket, str(path), str(seconds), "big" if big else "small"),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def upload_api(work: Path, s3: S3Server, bucket: str) -> Any:
    port = free_port()
    settings = s3.settings(bucket)
    env = {**ENV, "UPLOAD_AUTH_STORAGE_DIR": str(work / "spool")}
    env.update({"UPLOAD_AUTH_" + k.upper(): str(v) for k, v in settings.items()})
    env["UPLOAD_AUTH_S3_PATH_STYLE"] = "true"
    env["UPLOAD_AUTH_MAX_VIDEO_SIZE"] = "4gb"
    env["UPLOAD_AUTH_S3_TIMEOUT"] = "120"
    return start(
        [str(Path(sys.executable).parent / "upload-auth"), "upload-api", "--port", str(port)],
        port=port,
        env=env,
        ready="/readyz",
    )


def warm_up_workers(server: Any) -> None:
    """A small video first: the media workers start (once) before memory is measured."""
    import httpx

    from tests.support import media_files

    answer = httpx.post(
        server.url + "/api/v1/files/upload",
        data={"fileName": "warm.mp4"},
        files={"file": ("warm.mp4", media_files.mp4(1, 64, 64))},
        headers=BASIC,
        timeout=60,
    )
    assert answer.status_code == 200, answer.text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--big-mb", type=int, default=1024)
    parser.add_argument("--floor-worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_worker:
        endpoint, bucket, path, seconds, kind = args.floor_worker
        floor_worker(endpoint, bucket, path, float(seconds), kind == "big")
        return
    from tests.support import media_files

    results: dict[str, list[dict[str, float]]] = {"floor": [], "upload-auth": []}
    big: dict[str, list[tuple[float, float]]] = {"floor": [], "upload-auth": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        s3 = S3Server(work / "moto.log")
        s3.start()
        try:
            image = work / "photo-1mb.jpg"
            image.write_bytes(media_files.photo(MIB))
            for round_ in range(args.rounds):
                order = ("floor", "upload-auth") if round_ % 2 == 0 else ("upload-auth", "floor")
                for name in order:
                    bucket = s3.new_bucket()
                    if name == "floor":
                        found = floor(s3.endpoint, bucket, image, args.seconds, big=False)
                        run = {
                            "per_s": found["puts"] / found["seconds"],
                            "cpu_ms": found["cpu_s"] * 1000 / max(1, found["puts"]),
                            "peak_mib": found["peak_mib"],
                        }
                    else:
                        server = upload_api(work, s3, bucket)
                        try:
                            env = {"BENCH_FILE": str(image), "BENCH_NAME": image.name}
                            env["BENCH_AUTH"] = BASIC["Authorization"]
                            url = server.url + "/api/v1/files/upload"
                            wrk(url, seconds=1, connections=CONNECTIONS, script=SCRIPT, env=env)
                            cpu = cpu_seconds(server.process.pid)
                            got = wrk(
                                url,
                                seconds=args.seconds,
                                connections=CONNECTIONS,
                                script=SCRIPT,
                                env=env,
                            )
                            cpu = cpu_seconds(server.process.pid) - cpu
                            run = {
                                "per_s": got.requests_per_s,
                                "cpu_ms": cpu * 1000 / max(1, got.requests),
                                "peak_mib": memory_kib(server.process.pid, "VmHWM") / 1024,
                                "errors": got.errors,
                            }
                        finally:
                            server.stop()
                    results[name].append(run)
                    print(f"1 MB round {round_ + 1}: {name}: {run}", flush=True)
            video = work / "big.mp4"
            with video.open("wb") as out:
                out.write(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom")
                block = os.urandom(MIB)
                for _ in range(args.big_mb):
                    out.write(block)
            size_mb = video.stat().st_size / MIB
            for round_ in range(min(args.rounds, 2)):
                for name in (
                    ("floor", "upload-auth") if round_ % 2 == 0 else ("upload-auth", "floor")
                ):
                    bucket = s3.new_bucket()
                    if name == "floor":
                        found = floor(s3.endpoint, bucket, video, 0, big=True)
                        big[name].append((found["seconds"], found["growth_mib"]))
                    else:
                        server = upload_api(work, s3, bucket)
                        try:
                            warm_up_workers(server)
                            big[name].append(
                                one_upload(
                                    server,
                                    video,
                                    multipart=True,
                                    name="big.mp4",
                                    accepted_only=True,
                                )
                            )
                        finally:
                            server.stop()
                    print(f"{args.big_mb} MB round {round_ + 1}: {name}: {big[name][-1]}")
        finally:
            s3.stop()
    report(results, big, size_mb, args.rounds)


def report(
    results: dict[str, list[dict[str, float]]],
    big: dict[str, list[tuple[float, float]]],
    size_mb: float,
    rounds: int,
) -> None:
    print(f"\n{time.strftime('%Y-%m-%d')} · {os.cpu_count()} CPUs · medians of {rounds} rounds")
    print("| 1 MB JPEG into the bucket | uploads/s | rounds | CPU ms/upload | peak MiB |")
    print("|---|---:|---|---:|---:|")
    for name, runs in results.items():
        rates = [r["per_s"] for r in runs]
        cpu = statistics.median(r["cpu_ms"] for r in runs)
        peak = max(r["peak_mib"] for r in runs)
        rounds_text = " / ".join(f"{r:,.0f}" for r in rates)
        print(
            f"| {name} | {statistics.median(rates):,.0f} | {rounds_text} | {cpu:.2f} | {peak:.0f} |"
        )
    floor_rate = statistics.median(r["per_s"] for r in results["floor"])
    ours = statistics.median(r["per_s"] for r in results["upload-auth"])
    print(f"upload-auth: {ours / floor_rate:.2f}x the floor")
    print(f"\n| one {size_mb:,.0f} MB video | seconds | MB/s | peak memory growth MiB |")
    print("|---|---:|---:|---:|")
    for name, timed in big.items():
        seconds = statistics.median(s for s, _ in timed)
        growth = max(g for _, g in timed)
        print(f"| {name} | {seconds:.1f} | {size_mb / seconds:,.0f} | {growth:.1f} |")
    out = ROOT / "bench" / "results" / "object_storage.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"small": results, "big": big}, indent=1))


if __name__ == "__main__":
    main()
