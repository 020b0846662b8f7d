"""``embeddedMetadata`` as ExifTool reads it (``app.upload_api.exiftool``): every tag ExifTool
reports for a file, by its name and with its value, compared with ExifTool run on its own; its
batch process dies with its media worker; without ExifTool the upload API's own reading
stands in; and it is not run unless the answer asks for what it reads."""

import asyncio
import io
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest

from app.core.imagekit.filetypes import ALLOWED
from app.core.settings import Settings
from app.upload_api import exiftool, media
from app.upload_api.workers import MediaWorkers
from tests.support import media_files as mf
from tests.support.apps import FakeClock
from tests.support.corpus import corpus
from tests.support.exiftool_cli import exiftool_alone, exiftool_each, exiftool_grouped
from tests.support.uploads import V2, owner_upload, upload_client

pytestmark = pytest.mark.anyio

if shutil.which("exiftool") is None:  # ./scripts/setup --test installs it
    pytest.fail("exiftool is needed: apt-get install libimage-exiftool-perl", pytrace=False)


async def test_the_answer_is_every_tag_exiftool_reports(
    upload_settings: Settings, clock: FakeClock, private_key: str, tmp_path: Path
) -> None:
    """For every kind of real file (camera JPEG with EXIF, GPS, IPTC and XMP; TIFF, HEIC,
    PSD, camera raw, SVG, EPS, GIF, WebP, BMP, PNG, AVIF, MP4, a classic QuickTime movie, MP3,
    PDF): ``embeddedMetadata`` has exactly ExifTool's tags, names and values."""
    answers = {}
    async with upload_client(upload_settings, clock) as http:
        for name, data, _ in mf.REAL_FILES:
            answer = await owner_upload(
                http, private_key, name, data, endpoint=V2, responseFields="embeddedMetadata"
            )
            assert answer.status_code == 200, answer.text
            answers[name] = answer.json()["embeddedMetadata"]
            (tmp_path / name).write_bytes(data)
    by_exiftool = exiftool_each([tmp_path / name for name in answers])
    for name, embedded in answers.items():
        assert embedded == by_exiftool[name], name
    camera = by_exiftool["camera.jpg"]
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

    monkeypatch.setattr(exiftool, "read", refused)
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
            assert found is None or isinstance(found.embedded, dict)
        camera = tmp_path / "camera.jpg"
        camera.write_bytes(mf.camera_jpeg(32, 24))
        read = reader.read(str(camera))
        assert read is not None
        assert read.embedded["Make"] == mf.CAMERA["Make"]
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


def gif_with_icc(profile: bytes) -> bytes:
    """A GIF carrying an ICC profile in its ``ICCRGBG1`` application extension (as Photoshop
    writes it; Pillow neither writes nor reads it)."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("P", (20, 10)).save(out, "GIF")
    data = out.getvalue()
    flags = data[10]
    start = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)  # after the colour table
    chunks = [profile[i : i + 255] for i in range(0, len(profile), 255)]
    blocks = b"".join(bytes([len(chunk)]) + chunk for chunk in chunks) + b"\x00"
    return data[:start] + b"\x21\xff\x0bICCRGBG1012" + blocks + data[start:]


async def test_a_colour_profile_is_found_wherever_the_format_keeps_it(
    upload_settings: Settings, clock: FakeClock, private_key: str
) -> None:
    """``hasColorProfile`` for a GIF whose ICC profile is in an application extension (found
    by ExifTool), and false for one without."""
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    async with upload_client(upload_settings, clock) as http:
        found = {}
        for name, data in (("icc.gif", gif_with_icc(profile)), ("plain.gif", mf.image("gif"))):
            answer = await owner_upload(
                http, private_key, name, data, endpoint=V2, responseFields="metadata"
            )
            found[name] = answer.json()["metadata"]["hasColorProfile"]
    assert found == {"icc.gif": True, "plain.gif": False}


def test_the_exif_types_are_the_sdks() -> None:
    """The types ``metadata.exif`` is given are exactly the ones imagekitio's ``Metadata``
    model declares, field by field."""
    from imagekitio.types import metadata

    models: dict[str, Any] = {
        "image": metadata.ExifImage,
        "thumbnail": metadata.ExifThumbnail,
        "exif": metadata.ExifExif,
        "gps": metadata.ExifGps,
        "interoperability": metadata.ExifInteroperability,
    }
    kinds = {
        "Optional[str]": "str",
        "Optional[int]": "int",
        "Optional[float]": "float",
        "Optional[List[int]]": "ints",
        "Optional[List[float]]": "floats",
    }
    for group, model in models.items():
        declared = {
            field.alias: kinds[str(field.annotation).replace("typing.", "")]
            for field in model.model_fields.values()
        }
        assert exiftool.SDK_TYPES[group] == declared, group


def test_every_sdk_declares_the_fields_a_group_is_kept_for() -> None:
    """``EVERY_SDK`` is what @imagekit/javascript's ``UploadResponse`` declares for each
    ``metadata.exif`` group (the narrowest of the SDKs' types), read from its declarations."""
    import re

    declarations = (
        Path(__file__).parents[1]
        / "browser/node_modules/@imagekit/javascript/dist/interfaces/UploadResponse.d.ts"
    )
    if not declarations.exists():
        pytest.fail("the browser tests' npm packages are needed (./scripts/setup --test)")
    text = declarations.read_text()
    interfaces = {
        "image": "Image",
        "thumbnail": "Thumbnail",
        "exif": "Exif",
        "gps": "Gps",
        "interoperability": "Interoperability",
    }
    for group, interface in interfaces.items():
        # the innermost declaration of that name: its fields, one per line
        body = re.findall(rf"interface {interface} {{\n((?:\s+\w+\?: [^\n]+\n)+)\s+}}", text)
        assert body, interface
        fields = set(re.findall(r"(\w+)\?:", body[-1]))
        assert exiftool.EVERY_SDK[group] == fields, group


def test_exif_groups_are_typed_as_the_sdks_declare() -> None:
    """ExifTool's values given the SDKs' types: a one-byte SceneType as text, GPS degrees as
    degrees, minutes and seconds, a time stamp as three numbers, a version as four; what
    cannot be the declared type is left out, what the SDKs do not declare kept as it is, maker
    notes in ``makernote``, groups ImageKit does not have (a raw file's sub-images) left out,
    and so is a TIFF's pixel layout."""
    grouped = {
        "EXIF:IFD0:Make": "Canon",
        "EXIF:IFD0:XResolution": 300,
        "EXIF:IFD0:Orientation": "not a number",
        "EXIF:IFD1:ThumbnailLength": 5120,
        "EXIF:ExifIFD:SceneType": 1,
        "EXIF:ExifIFD:ExposureCompensation": -0.7,
        "EXIF:ExifIFD:LensSpecification": "24 70 2.8 2.8",
        "EXIF:GPS:GPSLatitude": 48.8582666666667,
        "EXIF:GPS:GPSTimeStamp": "9:41:7.5",
        "EXIF:GPS:GPSVersionID": "2 2 0 0",
        "EXIF:GPS:GPSAltitudeRef": 0,
        "EXIF:InteropIFD:InteropIndex": "R98",
        "EXIF:SubIFD:ImageWidth": 6000,
        "MakerNotes:Canon:LensModel": "RF24-70mm F2.8 L IS USM",
    }
    assert exiftool.exif_groups(grouped) == {
        "image": {"Make": "Canon", "XResolution": 300.0},
        "thumbnail": {"ThumbnailLength": 5120},
        "exif": {
            "SceneType": "1",
            "ExposureCompensation": -0.7,
            "LensSpecification": "24 70 2.8 2.8",
        },
        "gps": {
            "GPSLatitude": [48.0, 51.0, pytest.approx(29.76, abs=1e-4)],
            "GPSTimeStamp": [9.0, 41.0, 7.5],
            "GPSVersionID": [2, 2, 0, 0],
            "GPSAltitudeRef": 0,
        },
        "interoperability": {"InteropIndex": "R98"},
        "makernote": {"LensModel": "RF24-70mm F2.8 L IS USM"},
    }
    assert exiftool.exif_groups({"XMP:XMP-dc:Creator": "x"}) == {}
    # a TIFF's pixel layout is not metadata; a group sharing no field with the SDKs' type
    # (which TypeScript would refuse) is left to embeddedMetadata
    layout_only = {"EXIF:IFD0:StripOffsets": 8, "EXIF:IFD0:ImageWidth": 90, "EXIF:GPS:GPSSpeed": 3}
    assert exiftool.exif_groups(layout_only) == {}
    # a rational over zero, as ExifTool writes it: left out, never a crash or a non-number
    over_zero: dict[str, Any] = {"EXIF:IFD0:Make": "x", "EXIF:ExifIFD:ISO": "inf"}
    over_zero["EXIF:ExifIFD:FNumber"] = "nan"
    over_zero |= {"EXIF:ExifIFD:ExposureTime": float("inf"), "EXIF:GPS:GPSLatitude": "inf"}
    assert exiftool.exif_groups(over_zero) == {"image": {"Make": "x"}, "makernote": {}}
    phone = {"EXIF:IFD0:Make": "Apple", "EXIF:GPS:GPSLatitude": 48.5}  # no GPSVersionID
    assert exiftool.exif_groups(phone) == {"image": {"Make": "Apple"}, "makernote": {}}


async def test_metadata_exif_has_exiftools_names_and_values(
    upload_settings: Settings, clock: FakeClock, private_key: str, tmp_path: Path
) -> None:
    """A camera's JPEG with the tags whose names differ between readers (ExifTool's
    ExposureCompensation, FlashpixVersion, SerialNumber and LensInfo for EXIF's
    ExposureBiasValue, FlashPixVersion, BodySerialNumber and LensSpecification) and an APEX
    value: ``metadata.exif`` is ExifTool's tags, in ImageKit's groups, with ExifTool's values
    (a shutter speed in seconds, not APEX), and the SDK's strict model takes it."""
    from imagekitio.types import FileUploadResponse
    from PIL import Image
    from PIL.ExifTags import IFD
    from PIL.TiffImagePlugin import IFDRational

    exif = Image.Exif()
    exif[0x010F] = "Canon"
    details = exif.get_ifd(IFD.Exif)
    details[0x9204] = IFDRational(-2, 3)  # ExposureBiasValue: ExifTool's ExposureCompensation
    details[0xA000] = b"0100"  # FlashpixVersion
    details[0xA431] = "093024001234"  # BodySerialNumber
    details[0xA432] = (IFDRational(24), IFDRational(70), IFDRational(28, 10), IFDRational(28, 10))
    details[0x9201] = IFDRational(6643856, 1000000)  # ShutterSpeedValue: APEX for 1/100 s
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 120, 200)).save(out, "JPEG", exif=exif)
    data = out.getvalue()
    async with upload_client(upload_settings, clock) as http:
        answer = await owner_upload(
            http, private_key, "shot.jpg", data, endpoint=V2, responseFields="metadata"
        )
    body = answer.json()
    copy = tmp_path / "shot.jpg"
    copy.write_bytes(data)
    expected = exiftool.exif_groups(exiftool_grouped(copy))
    sent = body["metadata"]["exif"]
    assert {
        group: {k: v for k, v in tags.items() if k not in ("ExifOffset",)}
        for group, tags in sent.items()
    } == expected
    assert sent["exif"]["ExposureCompensation"] == pytest.approx(-0.67, abs=0.01)
    assert sent["exif"]["FlashpixVersion"] == "0100"
    assert sent["exif"]["SerialNumber"] == "093024001234"
    assert sent["exif"]["LensInfo"] == "24 70 2.8 2.8"
    assert sent["exif"]["ShutterSpeedValue"] == pytest.approx(0.01, abs=1e-4)
    assert sent["image"]["ExifOffset"] > 0  # the pointer, as ImageKit has it
    assert "ExposureBiasValue" not in sent["exif"]
    FileUploadResponse.model_validate(body, strict=True)


def test_an_answer_does_not_depend_on_the_files_read_before(tmp_path: Path) -> None:
    """ExifTool keeps the tag tables it loaded, and a loaded table can change a composite tag's
    source: mutagen's MP3 with an ID3v1 and an ID3v2 year has its DateTimeOriginal from one
    when read first and from the other after an MP3 with a malformed TYER frame. The batch
    process loads every table when it starts, so both readings are the same, and ExifTool's
    own."""
    files = corpus()
    fresh, after = exiftool.ExifTool(), exiftool.ExifTool()
    for name in ("bad-TYER-frame.mp3", "id3v1v2-combined.mp3"):
        (tmp_path / name).write_bytes(files[name])
    target = tmp_path / "id3v1v2-combined.mp3"
    try:
        alone = fresh.read(str(target))
        after.read(str(tmp_path / "bad-TYER-frame.mp3"))
        later = after.read(str(target))
        assert alone is not None
        assert later is not None
        assert alone.embedded == later.embedded == exiftool_alone(target)
    finally:
        fresh.close()
        after.close()
