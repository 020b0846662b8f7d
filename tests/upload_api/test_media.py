"""What the media libraries read in real files (made at test time by real encoders), and the
workers that run them: bounded in time and memory, and never the reason an upload fails."""

import asyncio
import os
import struct
import time
import zlib
from pathlib import Path

import pytest

from app.core.imagekit.filetypes import ALLOWED
from app.core.imagekit.transformations import THUMBNAIL_NAME, parse
from app.upload_api import media
from app.upload_api.render import render
from app.upload_api.workers import MediaWorkers
from tests.support import media_files as mf
from tests.support.media_files import REAL_FILES

pytestmark = pytest.mark.anyio


def _probe(tmp_path: Path, name: str, data: bytes) -> media.Probe:
    file_type = ALLOWED[name.rpartition(".")[2]]
    path = mf.write(tmp_path, name, data)
    return media.probe(str(path), file_type.extension, file_type.kind.value)


@pytest.mark.parametrize(("name", "data", "expected"), REAL_FILES, ids=[f[0] for f in REAL_FILES])
def test_real_files_are_read_by_their_libraries(
    tmp_path: Path, name: str, data: bytes, expected: dict[str, object]
) -> None:
    found = _probe(tmp_path, name, data)
    assert {k: found.get(k) for k in expected} == expected
    if "bitRate" in found:
        assert found["bitRate"] > 0
    if expected:
        assert found["metadata"]["format"] == name.rpartition(".")[2]
    for key in ("width", "height", "duration"):  # nothing claimed that was not in the file
        if key not in expected:
            assert key not in found


def test_a_camera_jpeg_gives_exif_iptc_and_xmp(tmp_path: Path) -> None:
    found = _probe(tmp_path, "camera.jpg", mf.camera_jpeg())
    exif = found["metadata"]["exif"]
    assert exif["image"]["Make"] == mf.CAMERA["Make"]
    assert exif["image"]["Orientation"] == 6
    assert exif["image"]["ModifyDate"] == mf.CAMERA["Taken"]
    assert exif["exif"]["DateTimeOriginal"] == mf.CAMERA["Taken"]
    assert exif["exif"]["CreateDate"] == mf.CAMERA["Taken"]
    assert exif["exif"]["ISO"] == 400
    assert exif["exif"]["ExposureTime"] == pytest.approx(1 / 250)
    assert exif["exif"]["ExifVersion"] == "0232"
    assert exif["gps"]["GPSVersionID"] == [2, 2, 0, 0]
    assert exif["gps"]["GPSLatitude"] == pytest.approx([48, 51, 29.76])
    assert isinstance(exif["image"]["ExifOffset"], int)
    assert found["metadata"]["quality"] == 90
    assert found["metadata"]["density"] == 300
    embedded = found["embeddedMetadata"]
    assert embedded["Model"] == mf.CAMERA["Model"]
    assert embedded["GPSLatitudeRef"] == "N"
    assert embedded["Keywords"] == mf.KEYWORDS  # IPTC
    assert embedded["By-line"] == "Grace Hopper"
    assert embedded["Creator"] == mf.XMP_CREATOR  # XMP (ExifTool: one creator, not a list)
    assert embedded["Rating"] == 4  # ExifTool's number
    assert "ExifOffset" not in embedded  # pointers into the file are not metadata


def test_a_phone_heic_gives_its_exif(tmp_path: Path) -> None:
    found = _probe(tmp_path, "phone.heic", mf.image("heic", camera=True))
    assert found["embeddedMetadata"]["Make"] == mf.CAMERA["Make"]
    assert found["metadata"]["exif"]["exif"]["FNumber"] == pytest.approx(2.8)


@pytest.mark.parametrize(
    ("width", "height", "view_box", "size"),
    [
        ("2in", "1in", None, (192, 96)),
        ("10cm", None, "0 0 100 50", (378, 189)),
        (None, None, "0,0,640,480", (640, 480)),
        ("100%", "100%", "0 0 30 20", (30, 20)),
        (None, "40", "0 0 30 20", (60, 40)),
    ],
)
def test_svg_sizes_follow_css_units_and_the_view_box(
    tmp_path: Path, width: str | None, height: str | None, view_box: str | None, size: object
) -> None:
    attributes = " ".join(
        f'{k}="{v}"' for k, v in (("width", width), ("height", height), ("viewBox", view_box)) if v
    )
    data = f'<svg xmlns="http://www.w3.org/2000/svg" {attributes}/>'.encode()
    found = _probe(tmp_path, "a.svg", data)
    assert (found["width"], found["height"]) == size


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("cut.jpg", mf.camera_jpeg()[:300]),
        ("noise.png", b"\x89PNG\r\n\x1a\n" + os.urandom(2000)),
        ("cut.mp4", mf.mp4()[:200]),
        ("noise.mp3", b"ID3" + os.urandom(3000)),
        ("nosize.svg", b'<svg xmlns="http://www.w3.org/2000/svg"/>'),
        (
            "bomb.svg",
            b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><svg width="&b;" height="1"/>',
        ),
        ("noise.heic", b"\x00\x00\x00\x18ftypheic" + os.urandom(500)),
    ],
)
def test_what_a_library_cannot_read_gives_nothing_and_no_exception(
    tmp_path: Path, name: str, data: bytes
) -> None:
    found = _probe(tmp_path, name, data)
    assert "duration" not in found
    assert not found.get("width") or name == "cut.jpg"  # a cut JPEG's header is still read


def test_a_huge_image_gives_its_size_and_is_never_decoded(tmp_path: Path) -> None:
    """A PNG whose header says 40,000 by 30,000 (1.2 gigapixels; a decompression bomb if
    decoded): its size is read from the header, no thumbnail is offered or made."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", 40_000, 30_000, 8, 2, 0, 0, 0)
    pixels = zlib.compress(bytes(1_000_000))  # the first rows; a bomb compresses this well
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
    bomb += chunk(b"IEND", b"")
    found = _probe(tmp_path, "bomb.png", bomb)
    assert (found["width"], found["height"]) == (40_000, 30_000)
    assert found["thumbnail"] is False
    target = tmp_path / "thumbnail.webp"
    assert _thumbnail(str(tmp_path / "bomb.png"), str(target), "image") == "undecodable"


def _thumbnail(source: str, target: str, kind: str) -> str:
    """ImageKit's thumbnail (``n-ik_ml_thumbnail``) as delivery renders it."""
    return render(source, target, parse("n-" + THUMBNAIL_NAME).to_worker(), kind)


def test_thumbnails_fit_in_the_box_upright_and_keep_transparency(tmp_path: Path) -> None:
    from PIL import Image

    source = mf.write(tmp_path, "camera.jpg", mf.camera_jpeg(640, 480))
    target = tmp_path / "thumbnail.webp"
    assert _thumbnail(str(source), str(target), "image") == "made"
    with Image.open(target) as made:
        assert made.format == "WEBP"
        assert made.size == (150, 200)  # EXIF orientation 6: the camera was held upright
    transparent = mf.write(tmp_path, "icon.png", mf.image("png", 400, 100))
    assert _thumbnail(str(transparent), str(target), "image") == "made"
    with Image.open(target) as made:
        assert made.size == (200, 50)
        assert made.mode == "RGBA"
    video = mf.write(tmp_path, "clip.mp4", mf.mp4(1, 320, 240))
    assert _thumbnail(str(video), str(target), "video") == "made"
    with Image.open(target) as made:
        assert made.size == (200, 150)
    assert (
        _thumbnail(str(mf.write(tmp_path, "a.eps", mf.eps())), str(target), "image")
        == "undecodable"
    )


# -- the workers --------------------------------------------------------------------------------


async def test_a_task_over_its_time_is_stopped_and_the_worker_replaced() -> None:
    """A task over its time gives nothing, at its time; the next task runs on a new worker.
    Starting a worker (a spawned interpreter) takes its own time on a loaded machine: the
    short limit is for the hung task alone, so the test proves the limit, not the machine."""
    workers = MediaWorkers(1, timeout=30, memory=1024**3)
    try:
        assert await workers.run(len, "warm") == 4
        workers.timeout = 0.5
        started = time.monotonic()
        assert await workers.run(time.sleep, 30) is None  # type: ignore[func-returns-value]
        assert time.monotonic() - started < 10
        workers.timeout = 30
        assert await workers.run(len, "again") == 5
    finally:
        await workers.close()


async def test_a_task_over_its_memory_fails_alone() -> None:
    workers = MediaWorkers(1, timeout=20, memory=512 * 1024**2)
    try:
        assert await workers.run(bytearray, 1024**3) is None
        assert await workers.run(len, "still here") == 10
    finally:
        await workers.close()


async def test_a_worker_that_dies_is_replaced() -> None:
    workers = MediaWorkers(1, timeout=20, memory=1024**3)
    try:
        assert await workers.run(os._exit, 3) is None  # type: ignore[func-returns-value]
        assert await workers.run(len, "next") == 4
    finally:
        await workers.close()


async def test_the_event_loop_runs_while_a_worker_reads() -> None:
    workers = MediaWorkers(1, timeout=20, memory=1024**3)
    try:
        await workers.run(len, "warm")
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        await workers.run(time.sleep, 0.5)
        ticker.cancel()
        assert ticks >= 20
    finally:
        await workers.close()


async def test_no_workers_means_no_metadata_but_a_web_image_has_its_size(tmp_path: Path) -> None:
    """Without workers nothing is read but a web image's header (in process)."""
    workers = MediaWorkers(0, timeout=1, memory=1024**3)
    path = mf.write(tmp_path, "a.png", mf.image("png", 64, 48))
    assert await workers.probe(path, ALLOWED["png"], everything=True) == {}
    assert await workers.probe(path, ALLOWED["png"], everything=False) == {
        "width": 64,
        "height": 48,
        "thumbnail": True,
    }
    tiff = mf.write(tmp_path, "a.tif", mf.image("tiff", 64, 48))
    assert await workers.probe(tiff, ALLOWED["tiff"], everything=False) == {}
