"""The image's size and its cold start, measured in Debian's podman.

    .venv/bin/python -m bench.containers [--rounds 5]

Builds (or finds) the image with scripts/containers, then starts each role fresh, locked down
as the tests run it (uid 10001, read-only root filesystem), and times ``podman run`` until
``/readyz`` answers 200. Prints a Markdown table for docs/deploy.md.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from app.credential_service.callers.api_keys import hash_api_key, new_api_key
from tests.support.apps import new_private_key, new_public_key
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[1]


def cold_start(image: str, role: str) -> float:
    port = free_port()
    env = {"IMAGEKIT_PUBLIC_KEY": new_public_key(), "IMAGEKIT_PRIVATE_KEY": new_private_key()}
    if role == "serve":
        hashed = hash_api_key(new_api_key())
        env["UPLOAD_AUTH_CALLERS"] = json.dumps({"api_keys": [{"name": "b", "hash": hashed}]})
    data = Path(tempfile.mkdtemp())
    os.chown(data, 10001, 10001)
    options = ["--read-only", "-v", f"{data}:/data", "-p", f"127.0.0.1:{port}:8000"]
    for key, value in env.items():
        options += ["-e", f"{key}={value}"]
    name = f"upload-auth-bench-{role}"
    subprocess.run(["podman", "rm", "-f", name], capture_output=True, check=False)
    started = time.monotonic()
    inside = ["--host", "0.0.0.0", "--port", "8000"]  # noqa: S104 - the container's own
    subprocess.run(
        ["podman", "run", "-d", f"--name={name}", *options, image, role, *inside],
        capture_output=True,
        check=True,
    )
    try:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            if time.monotonic() - started > 30:
                raise RuntimeError(f"{role} did not become ready")
            time.sleep(0.02)
    finally:
        subprocess.run(["podman", "rm", "-f", name], capture_output=True, check=False)
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    image = subprocess.run(
        [str(ROOT / "scripts" / "containers")], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    size = int(
        subprocess.run(
            ["podman", "image", "inspect", image, "--format", "{{.Size}}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    print(f"image {image}: {size / 1e6:.0f} MB")
    print("| role | cold start to /readyz, median ms | rounds |")
    print("|---|---:|---|")
    for role in ("serve", "upload-api", "dev"):
        times = [cold_start(image, role) * 1000 for _ in range(args.rounds)]
        rounds = " / ".join(f"{t:.0f}" for t in times)
        print(f"| `{role}` | {statistics.median(times):.0f} | {rounds} |")


if __name__ == "__main__":
    main()
