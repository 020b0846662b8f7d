"""Upload events: the upload API in-process on the real clock, and the official SDKs' verifiers."""

import json
import shutil
import subprocess
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
from imagekitio import ImageKit

from app.core.settings import Settings
from app.upload_api.app import create_upload_app
from tests.support.apps import asgi_client
from tests.support.receiver import Delivery
from tests.support.servers import unavailable

NODE_VERIFY = Path(__file__).parents[1] / "webhooks" / "node_verify.js"


NODE_MODULES = Path(__file__).parents[1] / "browser" / "node_modules" / "imagekit"


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
