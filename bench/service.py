"""The credential service against its peers, side by side, in one run.

    .venv/bin/python bench/service.py [--rounds 3] [--seconds 10]

Contenders (each started fresh every round; order reversed on even rounds):

- floor: a bare FastAPI endpoint returning a constant small JSON (uvicorn, uvloop + httptools,
  no access log) — what the stack itself costs;
- express: ImageKit's documented Node pattern, Express + the official `imagekit` SDK;
- flask: ImageKit's documented Python pattern, Flask + `imagekitio` under gunicorn, 2 workers;
- upload-auth v1 and v2: `upload-auth serve` with production features on (API-key caller
  authentication, in-memory rate limits, access log, audit log, metrics), one uvicorn process.

Each server is checked for correct answers, warmed up, then loaded with `wrk -t1 -c64`; req/s,
p50/p99, server CPU per request, RSS after warm-up and cold start are recorded, and medians
and ratios printed. Installs what it needs: wrk (apt), the Node contenders (npm), Flask and
gunicorn (the project's `bench` dependency group).
"""

import argparse
import hashlib
import hmac
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import jwt

from bench.harness import (
    ROOT,
    UVICORN,
    Running,
    cpu_seconds,
    free_port,
    memory_kib,
    start,
    wrk,
)

BIN = Path(sys.executable).parent
EXPRESS = ROOT / "bench" / "contenders" / "express"


def install() -> None:
    if shutil.which("wrk") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=EXPRESS, check=True)
    uv = ROOT / ".tools" / "bin" / "uv"
    subprocess.run(
        [str(uv), "sync", "--locked", "--all-extras", "--group", "bench", "--quiet"],
        cwd=ROOT,
        check=True,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
    )


@dataclass
class Row:
    contender: str
    endpoint: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float
    rss_mib: float
    cold_start_ms: float
    errors: int


@dataclass
class Contender:
    name: str
    label: str
    launch: Callable[[int, Path], tuple[list[str], dict[str, str]]]
    endpoints: list[tuple[str, str, Path | None]]  # (label, path, wrk script)
    ready: str = "/healthz"


def keys() -> tuple[str, str, str]:
    return (
        "public_bench",
        "private_" + secrets.token_urlsafe(24),
        "uak_" + secrets.token_urlsafe(32),
    )


PUBLIC, PRIVATE, API_KEY = keys()
BASE_ENV = {
    "PATH": os.environ["PATH"],
    "IMAGEKIT_PUBLIC_KEY": PUBLIC,
    "IMAGEKIT_PRIVATE_KEY": PRIVATE,
    "BENCH_API_KEY": API_KEY,
}


def floor(port: int, _: Path) -> tuple[list[str], dict[str, str]]:
    return [sys.executable, *UVICORN, "bench.contenders.floor:create", "--port", str(port)], {
        **BASE_ENV,
        "PYTHONPATH": str(ROOT),
    }


def express(port: int, _: Path) -> tuple[list[str], dict[str, str]]:
    return ["node", str(EXPRESS / "server.js")], {
        **BASE_ENV,
        "PORT": str(port),
        "NODE_ENV": "production",
    }


def flask(port: int, _: Path) -> tuple[list[str], dict[str, str]]:
    return [
        str(BIN / "gunicorn"),
        "-w",
        "2",
        "-b",
        f"127.0.0.1:{port}",
        "bench.contenders.flask_sdk:app",
    ], {**BASE_ENV, "PYTHONPATH": str(ROOT)}


def upload_auth(port: int, work: Path) -> tuple[list[str], dict[str, str]]:
    digest = hashlib.sha256(API_KEY.encode()).hexdigest()
    return [str(BIN / "upload-auth"), "serve", "--port", str(port)], {
        **BASE_ENV,
        "UPLOAD_AUTH_CALLERS": json.dumps(
            {"api_keys": [{"name": "bench", "hash": f"sha256:{digest}"}]}
        ),
        "UPLOAD_AUTH_RATE_LIMIT_V1": "100000000/minute",
        "UPLOAD_AUTH_RATE_LIMIT_V2": "100000000/minute",
        "UPLOAD_AUTH_QUOTA_V2": "100000000gb/hour",
        "UPLOAD_AUTH_PROFILES": json.dumps({"default": {"allow_v1": True}}),
        "UPLOAD_AUTH_STORAGE_DIR": str(work / "unused"),
    }


CONTENDERS = [
    Contender(
        "floor",
        "bare FastAPI, constant JSON (the floor)",
        floor,
        [("GET /v1/auth", "/v1/auth", None)],
        ready="/v1/auth",
    ),
    Contender(
        "express",
        "Express 5 + imagekit SDK, 1 process",
        express,
        [("GET /v1/auth", "/v1/auth", None)],
    ),
    Contender(
        "flask",
        "Flask + imagekitio, gunicorn 2 sync workers",
        flask,
        [("GET /v1/auth", "/v1/auth", None)],
    ),
    Contender(
        "upload-auth",
        "upload-auth serve, all features on, 1 process",
        upload_auth,
        [
            ("GET /v1/auth", "/v1/auth", ROOT / "bench" / "get_auth.lua"),
            ("POST /v2/token", "/v2/token", ROOT / "bench" / "post_token.lua"),
        ],
    ),
]


def check(contender: str, url: str) -> None:
    """The server's answers are right before it is loaded."""
    auth = {"Authorization": f"Bearer {API_KEY}"}
    body = httpx.get(url + "/v1/auth", headers=auth).json()
    if contender == "floor":
        return
    expected = hmac.new(
        PRIVATE.encode(), f"{body['token']}{body['expire']}".encode(), hashlib.sha1
    ).hexdigest()
    assert body["signature"] == expected, contender
    if contender == "upload-auth":
        grant = httpx.post(
            url + "/v2/token",
            headers=auth,
            json={"fileName": "cat.png", "fileSize": 48213, "mimeType": "image/png"},
        ).json()
        claims = jwt.decode(grant["token"], PRIVATE, algorithms=["HS256"])
        assert claims["fileName"] == "cat.png"


def measure(contender: Contender, seconds: int, work: Path) -> list[Row]:
    port = free_port()
    argv, env = contender.launch(port, work)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    server: Running = start(
        argv,
        port=port,
        env=env,
        ready=contender.ready,
        headers=headers,
        log=work / f"{contender.name}.log",
    )
    rows = []
    try:
        check(contender.name, server.url)
        for label, path, script in contender.endpoints:
            wrk(server.url + path, seconds=2, script=script, env=env)  # warm-up
            rss = memory_kib(server.process.pid) / 1024
            cpu_before = cpu_seconds(server.process.pid)
            result = wrk(server.url + path, seconds=seconds, script=script, env=env)
            cpu = cpu_seconds(server.process.pid) - cpu_before
            rows.append(
                Row(
                    contender.name,
                    label,
                    result.requests_per_s,
                    result.p50_ms,
                    result.p99_ms,
                    cpu / max(result.requests, 1) * 1e6,
                    rss,
                    server.cold_start_ms,
                    result.errors,
                )
            )
    finally:
        server.stop()
    return rows


def median_row(rows: list[Row]) -> Row:
    def median(name: str) -> float:
        return float(statistics.median(getattr(r, name) for r in rows))

    return Row(
        rows[0].contender,
        rows[0].endpoint,
        median("requests_per_s"),
        median("p50_ms"),
        median("p99_ms"),
        median("cpu_us_per_request"),
        median("rss_mib"),
        median("cold_start_ms"),
        sum(r.errors for r in rows),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--only", nargs="*", help="contender names")
    args = parser.parse_args()
    install()
    contenders = [c for c in CONTENDERS if not args.only or c.name in args.only]
    runs: dict[tuple[str, str], list[Row]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            order = contenders if round_ % 2 == 0 else list(reversed(contenders))
            for contender in order:
                for row in measure(contender, args.seconds, Path(tmp)):
                    runs.setdefault((row.contender, row.endpoint), []).append(row)
                    print(
                        f"round {round_ + 1}: {row.contender} {row.endpoint} "
                        f"{row.requests_per_s:,.0f} req/s",
                        file=sys.stderr,
                        flush=True,
                    )
    medians = {key: median_row(rows) for key, rows in runs.items()}
    labels = {c.name: c.label for c in CONTENDERS}
    print(
        f"{time.strftime('%Y-%m-%d')} · {os.cpu_count()} CPUs · wrk -t1 -c64 -d{args.seconds}s, "
        f"medians of {args.rounds} interleaved rounds"
    )
    print(
        "| contender | endpoint | req/s | p50 ms | p99 ms | server CPU µs/req | RSS MiB | "
        "cold start ms | errors | req/s per round |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for key, row in medians.items():
        per_round = " / ".join(f"{r.requests_per_s:,.0f}" for r in runs[key])
        print(
            f"| {labels[row.contender]} | {row.endpoint} | {row.requests_per_s:,.0f} | "
            f"{row.p50_ms:.2f} | {row.p99_ms:.2f} | {row.cpu_us_per_request:.0f} | "
            f"{row.rss_mib:.1f} | {row.cold_start_ms:.0f} | {row.errors} | {per_round} |"
        )
    floor_rps = medians.get(("floor", "GET /v1/auth"))
    express_rps = medians.get(("express", "GET /v1/auth"))
    for endpoint in ("GET /v1/auth", "POST /v2/token"):
        ours = medians.get(("upload-auth", endpoint))
        if ours and floor_rps:
            # Round by round: each ratio pairs the two servers measured in that round.
            rounds = zip(
                runs[("upload-auth", endpoint)], runs[("floor", "GET /v1/auth")], strict=True
            )
            per_round = " / ".join(f"{a.requests_per_s / b.requests_per_s:.2f}" for a, b in rounds)
            print(
                f"upload-auth {endpoint}: {ours.requests_per_s / floor_rps.requests_per_s:.2f}x "
                f"the floor (rounds: {per_round})"
                + (
                    f", {ours.requests_per_s / express_rps.requests_per_s:.2f}x Express + SDK"
                    if express_rps
                    else ""
                )
            )
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "service.json").write_text(
        json.dumps(
            {"runs": {f"{k[0]} {k[1]}": [asdict(r) for r in v] for k, v in runs.items()}}, indent=2
        )
    )


if __name__ == "__main__":
    main()
