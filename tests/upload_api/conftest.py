"""Fixtures for the upload API: an in-process app on a temporary storage root, and helpers that
make credentials the way the credential service does."""

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.keys import KeyPair
from app.core.settings import Settings
from tests.support.apps import FakeClock
from tests.support.buckets import S3Server, s3_server
from tests.support.uploads import upload_client


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3-wire server (moto's) for the session; each test takes a bucket of its own."""
    with s3_server(tmp_path_factory.mktemp("s3") / "moto.log") as server:
        yield server


@pytest.fixture(params=["local", "s3"])
def either_storage(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The storage settings of each backend in turn, for promises that hold on both: none
    (the directory), then a bucket of its own on the session's S3-wire server."""
    if request.param == "local":
        return {}
    s3: S3Server = request.getfixturevalue("s3")
    return s3.settings(s3.new_bucket())


@pytest.fixture
def storage_dir(tmp_path: Path) -> Path:
    return tmp_path / "uploads"


@pytest.fixture
def upload_settings(make_settings: Callable[..., Settings], storage_dir: Path) -> Settings:
    return make_settings(storage_dir=storage_dir, public_url="http://files.test")


@pytest.fixture
def pair(public_key: str, private_key: str) -> KeyPair:
    return KeyPair(public_key, private_key.encode())


@pytest.fixture
async def uploads(upload_settings: Settings, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    """The upload API in-process, files under a temporary directory."""
    async with upload_client(upload_settings, clock) as http:
        yield http
