"""A file system that refuses while an upload streams in (the kernel's own ENOSPC, from
/dev/full) is ImageKit's 503 with Retry-After, never a 500, and leaves nothing behind (#28)."""

import errno
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.settings import Settings
from app.upload_api.storage import LocalStorage
from tests.support.apps import FakeClock
from tests.support.samples import png
from tests.support.uploads import V1, assert_imagekit_error, basic, upload_client

pytestmark = pytest.mark.anyio

STORAGE = "The upload API cannot store files right now. Please retry."


async def test_a_full_disk_while_the_body_streams_is_a_503(
    uploads: httpx.AsyncClient,
    private_key: str,
    storage_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every write of the upload goes to /dev/full: 503 in ImageKit's shape, Retry-After, and
    nothing stored or left in the temporary area; with the disk back, the upload is stored."""
    real_new_temp = LocalStorage.new_temp
    made: list[Path] = []

    def full_disk(self: LocalStorage) -> tuple[int, Path]:
        fd, path = real_new_temp(self)
        os.close(fd)
        made.append(path)
        return os.open("/dev/full", os.O_WRONLY), path

    data = png(64, 64) + bytes(256 * 1024)  # larger than a write buffer
    with monkeypatch.context() as patch:
        patch.setattr(LocalStorage, "new_temp", full_disk)  # where form.py's FileSink writes
        refused = await uploads.post(
            V1,
            headers=basic(private_key),
            data={"fileName": "big.png"},
            files={"file": ("big.png", data, "image/png")},
        )
    assert_imagekit_error(refused, 503, STORAGE)
    assert refused.headers["retry-after"] == "5"
    assert made
    assert not any(path.exists() for path in made)
    assert not any(p.is_file() for p in (storage_dir / "files").rglob("*"))
    stored = await uploads.post(
        V1,
        headers=basic(private_key),
        data={"fileName": "big.png"},
        files={"file": ("big.png", data, "image/png")},
    )
    assert stored.status_code == 200, stored.text


async def test_readiness_tells_the_truth_about_the_storage(
    upload_settings: Settings, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ready with the ledger answering and the storage writable; not ready (ImageKit's 503,
    saying why) when free space is under the minimum or a write is refused."""
    async with upload_client(upload_settings, clock) as http:
        ready = await http.get("/readyz")
        assert ready.json() == {"status": "ready", "checks": {"ledger": "ok", "storage": "ok"}}

        opening = os.open

        def read_only(path: str, flags: int, *args: Any, **kwargs: Any) -> int:
            if flags & os.O_CREAT:  # a read-only filesystem makes nothing
                raise OSError(errno.EROFS, "Read-only file system")
            return opening(path, flags, *args, **kwargs)

        with monkeypatch.context() as patch:
            patch.setattr(os, "open", read_only)
            refusing = await http.get("/readyz")
        assert refusing.status_code == 503
        assert refusing.json()["message"] == (
            "The upload API is not ready: the storage refuses writes (Read-only file system)."
        )
    wanting = upload_settings.model_copy(update={"storage_min_free": 1024**4})
    async with upload_client(wanting, clock) as http:
        full = await http.get("/readyz")
    assert full.status_code == 503
    assert "MiB free (under the minimum)" in full.json()["message"]


async def test_a_thumbnail_on_a_full_disk_is_a_503_and_made_once_it_is_back(
    upload_settings: Settings,
    clock: FakeClock,
    private_key: str,
    storage_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The media worker (another process) writes the thumbnail where the disk is full (the
    kernel's /dev/full under its name): ImageKit's 503, not a 404 saying the file is gone,
    nothing kept; with the disk back, the thumbnail is made and served."""
    async with upload_client(upload_settings, clock) as http:
        stored = await http.post(
            V1,
            headers=basic(private_key),
            data={"fileName": "pic.png"},
            files={"file": ("pic.png", png(64, 64), "image/png")},
        )
        url = stored.json()["thumbnailUrl"].removeprefix("http://files.test")
        work = next((storage_dir / "tmp").glob("proc-*"))
        (work / "render-full.webp").symlink_to("/dev/full")
        with monkeypatch.context() as patch:
            patch.setattr("app.upload_api.delivery.new_id", lambda: "full")
            refused = await http.get(url)
        assert_imagekit_error(refused, 503, STORAGE)
        assert list((storage_dir / "thumbnails").iterdir()) == []
        served = await http.get(url)
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/webp"
