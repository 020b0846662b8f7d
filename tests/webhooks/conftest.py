"""Fixtures for upload events: a webhook secret made at run time, the official SDKs' verifiers,
and the upload API in-process on the real clock (deliveries are signed with the time, and
the verifiers check it)."""

import json
import secrets
import shutil
import subprocess
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from imagekitio import ImageKit

from app.config import Settings
from app.upload_api.main import create_upload_app
from tests.conftest import asgi_client
from tests.servers import unavailable
from tests.webhooks.receiver import Delivery

NODE_VERIFY = Path(__file__).with_name("node_verify.js")
NODE_MODULES = Path(__file__).parents[1] / "browser" / "node_modules" / "imagekit"


@pytest.fixture
def webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(24)


@pytest.fixture
def hook_settings(
    make_settings: Callable[..., Settings], tmp_path: Path, webhook_secret: str
) -> Callable[..., Settings]:
    """Upload API settings with a webhook to ``url``; quick retries."""

    def make(url: str, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "storage_dir": tmp_path / "uploads",
            "public_url": "http://files.test",
            "webhook_url": url,
            "webhook_secret": webhook_secret,
            "webhook_timeout": 0.5,
            "webhook_retry_base": 0.1,
        }
        return make_settings(**(values | overrides))

    return make


def upload_api(settings: Settings) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    """The upload API in-process on the real clock, lifespan (and so the sender) included."""
    return asgi_client(create_upload_app(settings), "http://upload.test")


def python_unwrap(delivery: Delivery, secret: str) -> Any:
    """imagekitio 5.x's own verifier (Standard Webhooks): the typed event, or it raises."""
    client = ImageKit(private_key="private_unused")
    return client.webhooks.unwrap(delivery.body.decode(), headers=delivery.headers, key=secret)


def node_verify(deliveries: list[Delivery], secret: str) -> list[dict[str, Any]]:
    """The Node SDK's ``verifyWebhookEvent`` (x-ik-signature) on each delivery."""
    if shutil.which("node") is None or not NODE_MODULES.exists():
        unavailable("node and the imagekit npm package (./scripts/setup --test)")
    pairs = [[d.body.decode(), d.headers["x-ik-signature"]] for d in deliveries]
    result = subprocess.run(
        ["node", str(NODE_VERIFY), secret],
        input=json.dumps(pairs),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    answers: list[dict[str, Any]] = json.loads(result.stdout)
    return answers
