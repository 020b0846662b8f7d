"""``embeddedMetadata`` as ExifTool reads it (``app.upload_api.exiftool``): every tag ExifTool
reports for a file, by its name and with its value, compared with ExifTool run on its own; its
batch process dies with its media worker; without ExifTool the upload API's own reading
stands in; and it is not run unless the answer asks for what it reads."""

import asyncio
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from app.core.imagekit.filetypes import ALLOWED
from app.core.settings import Settings
from app.upload_api import exiftool, media
from app.upload_api.workers import MediaWorkers
from tests.support import media_files as mf
from tests.support.apps import FakeClock
from tests.support.uploads import V2, owner_upload, upload_client

pytestmark = pytest.mark.anyio

EXIFTOOL = shutil.which("exiftool")
if EXIFTOOL is None:  # ./scripts/setup --test installs it (Debian's libimage-exiftool-perl)
    pytest.fail("exiftool is needed: apt-get install libimage-exiftool-perl", pytrace=False)


def exiftool_alone(path: Path) -> dict[str, Any]:
    """ExifTool run as a user runs it: one file, JSON, numeric values; without the System
    group (paths and times of the server's copy) and its version; binary blobs left out."""
    result = subprocess.run(
        [str(EXIFTOOL), "-j", "-n", "-x", "System:all", "-x", "ExifTool:all", str(path)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    [tags] = json.loads(result.stdout)
    del tags["SourceFile"]
    return {k: v for k, v in tags.items() if not str(v).startswith("(Binary data ")}


async def test_the_answer_is_every_tag_exiftool_reports(
    upload_settings: Settings, clock: FakeClock, private_key: str, tmp_path: Path
) -> None:
    """For every kind of real file (camera JPEG with EXIF, GPS, IPTC and XMP; TIFF, HEIC,
    PSD, camera raw, SVG, EPS, GIF, WebP, BMP, PNG, AVIF, MP4, a classic QuickTime movie, MP3,
    PDF): ``embeddedMetadata`` has exactly ExifTool's tags, names and values."""
    async with upload_client(upload_settings, clock) as http:
        for name, data, _ in mf.REAL_FILES:
            answer = await owner_upload(
                http, private_key, name, data, endpoint=V2, responseFields="embeddedMetadata"
            )
            assert answer.status_code == 200, answer.text
            copy = tmp_path / name
            copy.write_bytes(data)
            assert answer.json()["embeddedMetadata"] == exiftool_alone(copy), name
    camera = exiftool_alone(tmp_path / "camera.jpg")
    assert camera["GPSLatitude"] == pytest.approx(48.858266, abs=1e-5)  # decimal degrees
    assert camera["Keywords"] == mf.KEYWORDS
    assert camera["Creator"] == mf.XMP_CREATOR
    assert not {"FileName", "Directory", "FilePermissions", "ExifToolVersion"} & camera.keys()


def test_without_exiftool_the_upload_apis_own_reading_stands_in(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A machine without ExifTool (a first run before its package): the metadata the upload
    API reads itself, still EXIF, IPTC and XMP."""
    path = tmp_path / "camera.jpg"
    path.write_bytes(mf.camera_jpeg(64, 48))
    monkeypatch.setattr(exiftool, "_READER", exiftool.ExifTool(program="/nonexistent/exiftool"))
    monkeypatch.setattr(exiftool._READER, "program", None)
    found = media.probe(str(path), "jpg", "image")
    assert found["embeddedMetadata"]["Make"] == mf.CAMERA["Make"]
    assert "ExifByteOrder" not in found["embeddedMetadata"]  # ExifTool's, not ours


def test_exiftool_is_not_run_unless_asked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A video's duration is read for every answer; ExifTool only when the answer asks for
    ``embeddedMetadata``."""

    def refused(path: str, extension: str) -> None:
        raise AssertionError(f"ExifTool read {path} ({extension})")

    monkeypatch.setattr(exiftool, "embedded", refused)
    path = tmp_path / "clip.mp4"
    path.write_bytes(mf.mp4(1, 64, 48))
    assert media.probe(str(path), "mp4", "video", embedded=False)["duration"] == 1


def test_a_file_exiftool_cannot_read_is_not_an_error(tmp_path: Path) -> None:
    """Garbage, an empty file, a missing file: what ExifTool can tell, or nothing; the same
    process then reads the next file."""
    reader = exiftool.ExifTool()
    try:
        garbage = tmp_path / "garbage.jpg"
        garbage.write_bytes(b"\xff\xd8\xff" + os.urandom(4096))
        empty = tmp_path / "empty.png"
        empty.write_bytes(b"")
        for path in (garbage, empty, tmp_path / "missing.gif"):
            found = reader.read(str(path))
            assert found is None or isinstance(found, dict)
        camera = tmp_path / "camera.jpg"
        camera.write_bytes(mf.camera_jpeg(32, 24))
        assert (reader.read(str(camera)) or {}).get("Make") == mf.CAMERA["Make"]
    finally:
        reader.close()


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:  # a thread that ended meanwhile
            continue
    return found


async def test_exiftool_dies_with_its_worker(tmp_path: Path) -> None:
    """A media worker killed (as a task over its time is) takes its ExifTool along: nothing
    is left running, and the next read is a new worker's."""
    path = tmp_path / "camera.jpg"
    path.write_bytes(mf.camera_jpeg(32, 24))
    workers = MediaWorkers(1, timeout=30, memory=2**30)
    try:
        found = await workers.probe(path, ALLOWED["jpg"], everything=True)
        assert found["embeddedMetadata"]["ExifByteOrder"] == "MM"  # ExifTool's tag
        [(worker, readers)] = [
            (child, [p for p in _children(child) if b"exiftool" in _cmdline(p)])
            for child in _children(os.getpid())
            if any(b"exiftool" in _cmdline(p) for p in _children(child))
        ]
        os.kill(worker, signal.SIGKILL)
        for _ in range(100):
            if all(_gone(p) for p in readers):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("ExifTool outlived its worker")
        for _ in range(50):  # once the pool has replaced its worker
            again = await workers.probe(path, ALLOWED["jpg"], everything=True)
            if again:
                break
            await asyncio.sleep(0.1)
        assert again["embeddedMetadata"]["Make"] == mf.CAMERA["Make"]
    finally:
        await workers.close()


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _gone(pid: int) -> bool:
    """Ended (reaped, or a zombie waiting to be)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


async def test_exiftool_runs_where_the_answer_is_read(
    upload_settings: Settings, clock: FakeClock, private_key: str
) -> None:
    """Through the upload API: a camera JPEG asked for ``embeddedMetadata`` has ExifTool's
    tags (its byte order, its JFIF and composite tags), not only EXIF's."""
    async with upload_client(upload_settings, clock) as http:
        answer = await owner_upload(
            http,
            private_key,
            "camera.jpg",
            mf.camera_jpeg(64, 48),
            endpoint=V2,
            responseFields="embeddedMetadata",
        )
    embedded = answer.json()["embeddedMetadata"]
    assert embedded["ExifByteOrder"] == "MM"
    assert embedded["JFIFVersion"] == "1 1"
    assert embedded["GPSPosition"] == "48.8582666666667 2.2945"
