"""A real S3-wire server for the object-storage tests: moto's (``moto_server``, from PyPI) on a
free loopback port, which a test may stop (the store unreachable) and start again."""

import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from app.upload_api.storage.objects import BucketConfig
from tests.support.servers import BIN, free_port, stop_process, unavailable


class S3Server:
    def __init__(self, log: Path) -> None:
        self.binary = BIN / "moto_server"
        if not self.binary.exists():
            unavailable("moto_server is not installed (./scripts/setup installs the dev group)")
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        #: Credentials made for this run (moto accepts any; the client signs with them).
        self.access_key_id = "test-" + secrets.token_hex(4)
        self.secret_access_key = secrets.token_urlsafe(24)

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(self.binary), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.endpoint + "/moto-api/", timeout=1).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto_server did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """The store gone (its data with it: moto keeps buckets in memory)."""
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def new_bucket(self) -> str:
        """A new empty bucket with a unique name."""
        name = "test-" + secrets.token_hex(6)
        httpx.put(f"{self.endpoint}/{name}", timeout=10).raise_for_status()
        return name

    def config(self, bucket: str, **overrides: Any) -> BucketConfig:
        values: dict[str, Any] = {
            "bucket": bucket,
            "endpoint": self.endpoint,
            "region": "us-east-1",
            "path_style": True,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "timeout": 5.0,
            **overrides,
        }
        return BucketConfig(**values)

    def settings(self, bucket: str, **overrides: Any) -> dict[str, Any]:
        """The upload API's settings for ``bucket`` on this server."""
        return {
            "storage_backend": "s3",
            "s3_bucket": bucket,
            "s3_endpoint": self.endpoint,
            "s3_region": "us-east-1",
            "s3_path_style": True,
            "s3_access_key_id": self.access_key_id,
            "s3_secret_access_key": self.secret_access_key,
            "s3_timeout": 5.0,
            **overrides,
        }

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every key in ``bucket`` under ``prefix`` (path-style ListObjectsV2, unsigned: moto
        does not check signatures)."""
        found: list[str] = []
        token = None
        while True:
            params = {"list-type": "2", "prefix": prefix}
            if token:
                params["continuation-token"] = token
            answer = httpx.get(f"{self.endpoint}/{bucket}", params=params, timeout=10)
            answer.raise_for_status()
            text = answer.text
            found += [part.split("</Key>")[0] for part in text.split("<Key>")[1:]]
            if "<IsTruncated>true</IsTruncated>" not in text:
                return found
            token = text.split("<NextContinuationToken>")[1].split("<")[0]


@contextmanager
def s3_server(log: Path) -> Iterator[S3Server]:
    server = S3Server(log)
    server.start()
    try:
        yield server
    finally:
        server.stop()
