"""Per-request cost without a network: the ASGI app called directly in a uvloop loop.

    .venv/bin/python -m bench.inproc [--profile] [--requests 20000] [--path /v1/auth]

Builds `upload-auth serve`'s app with production features on (API-key callers, rate limits,
access and audit logs to /dev/null, metrics) and reports microseconds per request, or a cProfile
of the run with --profile. For finding where the time goes; the wrk harness gives the figures.
"""

import argparse
import asyncio
import cProfile
import hashlib
import json
import os
import pstats
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvloop

KEY = "uak_" + "k" * 43


def build(path: str) -> Any:
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    os.environ.update(
        {
            "IMAGEKIT_PUBLIC_KEY": "public_bench",
            "IMAGEKIT_PRIVATE_KEY": "private_0123456789012345678901234567abc",
            "UPLOAD_AUTH_CALLERS": json.dumps(
                {"api_keys": [{"name": "b", "hash": f"sha256:{digest}"}]}
            ),
            "UPLOAD_AUTH_RATE_LIMIT_V1": "100000000/minute",
            "UPLOAD_AUTH_RATE_LIMIT_V2": "100000000/minute",
            "UPLOAD_AUTH_QUOTA_V2": "100000000gb/hour",
            "UPLOAD_AUTH_PROFILES": json.dumps({"default": {"allow_v1": True}}),
        }
    )
    if path == "floor":
        from bench.contenders.floor import create

        return create()
    from app.credential_service.app import create_app

    return create_app()


async def run(app: Any, path: str, count: int) -> float:
    post = path == "/v2/token"
    body = b'{"fileName": "cat.png", "fileSize": 48213, "mimeType": "image/png"}'
    headers = [(b"host", b"bench"), (b"authorization", f"Bearer {KEY}".encode())]
    if post:
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
    state: dict[str, Any] = {}
    lifespan_messages = iter([{"type": "lifespan.startup"}])

    async def lifespan_receive() -> dict[str, Any]:
        try:
            return next(lifespan_messages)
        except StopIteration:
            await asyncio.Event().wait()
            raise

    async def lifespan_send(_: MutableMapping[str, Any]) -> None:
        return None

    task = asyncio.create_task(
        app({"type": "lifespan", "state": state}, lifespan_receive, lifespan_send)
    )
    await asyncio.sleep(0.1)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body if post else b"", "more_body": False}

    statuses = []

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    scope_base = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST" if post else "GET",
        "scheme": "http",
        "path": "/v1/auth" if path == "floor" else path,
        "raw_path": b"",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 8000),
        "root_path": "",
    }
    call: Callable[[], Awaitable[None]] = lambda: app(  # noqa: E731
        {**scope_base, "state": dict(state)}, receive, send
    )
    for _ in range(500):
        await call()
    started = time.perf_counter()
    for _ in range(count):
        await call()
    elapsed = time.perf_counter() - started
    assert set(statuses) == {200}, set(statuses)
    task.cancel()
    return elapsed / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--path", default="/v1/auth", help="/v1/auth, /v2/token or floor")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the access and audit lines go nowhere
    app = build(args.path)
    loop = uvloop.new_event_loop()
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        loop.run_until_complete(run(app, args.path, args.requests))
        profile.disable()
        sys.stdout = sys.__stdout__
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)
        return
    micro = loop.run_until_complete(run(app, args.path, args.requests))
    sys.stdout = sys.__stdout__
    print(f"{args.path}: {micro:.1f} µs per request")


if __name__ == "__main__":
    main()
