"""Fixtures for upload events: a webhook secret made at run time, the official SDKs' verifiers,
and the upload API in-process on the real clock (deliveries are signed with the time, and
the verifiers check it)."""

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.core.settings import Settings


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
