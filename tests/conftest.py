"""Shared fixtures: key material generated per run, explicit settings, a controllable clock and
an in-process client that runs the app's lifespan."""

import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from app.core.settings import KeyPairConfig, Settings
from tests.support.apps import FakeClock, in_process, new_private_key, new_public_key


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees configuration from the machine's environment."""
    for name in list(os.environ):
        if name.startswith(("UPLOAD_AUTH_", "IMAGEKIT_", "IMAGE_KIT_")):
            monkeypatch.delenv(name)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def public_key() -> str:
    return new_public_key()


@pytest.fixture
def private_key() -> str:
    return new_private_key()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_settings(public_key: str, private_key: str) -> Callable[..., Settings]:
    """Settings with this test's key pair, in development mode unless told otherwise."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "public_key": public_key,
            "private_key": private_key,
            "dev_mode": True,
            "log_format": "json",
            # Limits are tested on their own; elsewhere they would only add noise.
            "rate_limit_v1": None,
            "rate_limit_v2": None,
            "quota_v2": None,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def other_pair() -> tuple[str, str]:
    """A second key pair (public, private), configured by ``two_pair_settings``."""
    return new_public_key(), new_private_key()


@pytest.fixture
def two_pair_settings(
    make_settings: Callable[..., Settings], other_pair: tuple[str, str]
) -> Settings:
    """This test's pair signs; ``other_pair`` is configured beside it."""
    return make_settings(keys=[KeyPairConfig(public_key=other_pair[0], private_key=other_pair[1])])


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
async def client(settings: Settings, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    """The app with this test's settings, in-process."""
    async with in_process(settings, clock) as http:
        yield http


@pytest.fixture
def file_request() -> dict[str, Any]:
    return {"fileName": "cat.png", "fileSize": 48213, "mimeType": "image/png"}
