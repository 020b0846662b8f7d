"""Uploads of real files (made at test time) through the upload API: ImageKit's metadata in the
answer, ``checks`` on it, thumbnails served, a file no library can read stored all the same,
and the answers parsed by the official SDKs' response types (imagekitio 5.x's pydantic models,
and the JavaScript SDK's TypeScript types by ``tsc``)."""

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
from imagekitio import ImageKit
from imagekitio.types import FileUploadResponse
from PIL import Image

from app.core.settings import Settings
from tests.support import media_files as mf
from tests.support.apps import FakeClock
from tests.support.media_files import REAL_FILES
from tests.support.uploads import V1, V2, basic, owner_upload, typescript_rejects, upload_client

pytestmark = pytest.mark.anyio

PHOTO = mf.camera_jpeg(32, 24)
ASKED = "metadata,embeddedMetadata,tags,isPrivateFile,isPublished,customMetadata,customCoordinates"


async def store(
    http: httpx.AsyncClient, private_key: str, name: str, data: bytes, **fields: str
) -> httpx.Response:
    return await owner_upload(http, private_key, name, data, endpoint=V2, **fields)


@pytest.fixture
async def answers(
    upload_settings: Settings, clock: FakeClock, private_key: str
) -> dict[str, dict[str, Any]]:
    """Every real file uploaded once, with every response field asked for."""
    found = {}
    async with upload_client(upload_settings, clock) as http:
        for name, data, _ in REAL_FILES:
            response = await store(http, private_key, name, data, responseFields=ASKED)
            assert response.status_code == 200, response.text
            found[name] = response.json()
    return found


async def test_the_answer_says_what_the_file_holds(answers: dict[str, dict[str, Any]]) -> None:
    for name, data, expected in REAL_FILES:
        body = answers[name]
        assert {k: body.get(k) for k in expected} == expected, name
        assert body["metadata"]["size"] == len(data) == body["size"]
        assert body["metadata"]["format"] == name.rpartition(".")[2]
        for key in ("width", "height"):
            if key in expected:
                assert body["metadata"][key] == expected[key]
    camera = answers["camera.jpg"]
    assert camera["embeddedMetadata"]["Make"] == mf.CAMERA["Make"]
    assert camera["embeddedMetadata"]["Keywords"] == mf.KEYWORDS
    assert camera["metadata"]["exif"]["exif"]["ISO"] == 400
    video = answers["clip.mp4"]
    assert video["bitRate"] > 0
    assert video["fileType"] == "non-image"
    assert "embeddedMetadata" in answers["report.pdf"]  # asked for: present, even if empty


async def test_thumbnails_are_served_for_images_and_video_only(
    upload_settings: Settings, clock: FakeClock, private_key: str
) -> None:
    async with upload_client(upload_settings, clock) as http:
        for name, data, _ in REAL_FILES:
            body = (await store(http, private_key, name, data)).json()
            if name.endswith((".svg", ".eps", ".mp3", ".pdf")):
                assert "thumbnailUrl" not in body, name
                continue
            url = body["thumbnailUrl"]
            assert url == f"http://files.test/files/tr:n-ik_ml_thumbnail/{name}"
            served = await http.get(url.removeprefix("http://files.test"))
            assert served.status_code == 200, name
            assert served.headers["content-type"] == "image/webp"
            assert served.headers["x-content-type-options"] == "nosniff"
            with Image.open(io.BytesIO(served.content)) as made:
                assert max(made.size) <= 200
            again = await http.get(
                url.removeprefix("http://files.test"),
                headers={"If-None-Match": served.headers["etag"]},
            )
            assert again.status_code == 304
        missing = await http.get("/files/tr:n-ik_ml_thumbnail/nothing.jpg")
        assert missing.status_code == 404


@pytest.mark.parametrize(
    ("name", "data", "mime"),
    [
        ("photo.avif", mf.image("avif", 48, 36), "image/avif"),
        ("photo.heic", mf.image("avif", 48, 36), "image/avif"),  # the bytes decide
        ("old.mov", mf.classic_quicktime(1), "video/quicktime"),
        ("notes.txt", "Café crème, déjà vu.\n".encode("latin-1"), "text/plain"),
        ("notes.txt", "\u201cquoted\u201d \u20ac5\n".encode("cp1252"), "text/plain"),
        ("page.html", "<p>Grüße</p>\n".encode("utf-16"), "text/html; charset=utf-16le"),
        (
            "feed.xml",
            '<?xml version="1.0"?><a>ü</a>'.encode("utf-32"),
            "application/xml; charset=utf-32le",
        ),
        ("notes.txt", "Grüße\n".encode(), "text/plain; charset=utf-8"),
        ("big.txt", "Äpfel und Birnen.\n".encode("latin-1") * 20_000, "text/plain"),
        ("data.json", '{"ville": "Zürich"}'.encode("iso-8859-1"), "application/json"),
    ],
)
async def test_files_as_the_world_makes_them_are_stored_as_what_they_are(
    make_settings: Callable[..., Settings],
    storage_dir: Path,
    either_storage: dict[str, Any],
    clock: FakeClock,
    private_key: str,
    name: str,
    data: bytes,
    mime: str,
) -> None:
    """AVIF typed and served as AVIF (never as the HEIC its container shares), a QuickTime movie
    from before ``ftyp``, and text in other encodings than UTF-8: stored, typed and served
    byte for byte, text with its Unicode encoding named and never called UTF-8 when it is
    not. On either storage, small files and large."""
    settings = make_settings(
        storage_dir=storage_dir, public_url="http://files.test", **either_storage
    )
    async with upload_client(settings, clock) as http:
        response = await store(http, private_key, name, data)
        assert response.status_code == 200, response.text
        body = response.json()
        served = await http.get(body["url"].removeprefix("http://files.test"))
    assert body["fileType"] == ("image" if mime.startswith("image/") else "non-image")
    assert served.status_code == 200
    assert served.headers["content-type"] == mime
    assert served.content == data
    assert served.headers["content-length"] == str(len(data))


async def test_an_overwrite_gets_a_new_thumbnail(
    upload_settings: Settings, clock: FakeClock, private_key: str
) -> None:
    async with upload_client(upload_settings, clock) as http:
        first = await store(http, private_key, "p.png", mf.image("png", 300, 100))
        path = first.json()["thumbnailUrl"].removeprefix("http://files.test")
        before = await http.get(path)
        await store(http, private_key, "p.png", mf.image("png", 100, 300))
        after = await http.get(path)
        assert before.headers["etag"] != after.headers["etag"]
        with Image.open(io.BytesIO(after.content)) as made:
            assert made.size[1] > made.size[0]
        kept = list((upload_settings.storage_dir / "thumbnails").iterdir())
        assert len(kept) == 1  # the old version's thumbnail is gone


async def test_a_private_files_thumbnail_needs_the_sdks_signed_url(
    upload_settings: Settings, clock: FakeClock, private_key: str
) -> None:
    async with upload_client(upload_settings, clock) as http:
        body = (
            await store(http, private_key, "me.jpg", mf.camera_jpeg(), isPrivateFile="true")
        ).json()
        plain = body["thumbnailUrl"].removeprefix("http://files.test")
        assert (await http.get(plain)).status_code == 401
        helper = ImageKit(private_key=private_key).helper
        with mock.patch("imagekitio.lib.helper.time.time", return_value=clock()):
            signed = helper.build_url(
                src="/me.jpg",
                url_endpoint="http://files.test/files",
                transformation=[{"raw": "n-ik_ml_thumbnail"}],
                transformation_position="path",
                signed=True,
                expires_in=600,
            )
        assert signed.split("?")[0] == body["thumbnailUrl"]
        served = await http.get(signed.removeprefix("http://files.test"))
        assert served.status_code == 200
        assert served.headers["content-type"] == "image/webp"


@pytest.mark.parametrize(
    ("checks", "stored"),
    [
        ('"mediaMetadata.duration" <= 5', True),
        ('"mediaMetadata.duration" > 5', False),
        ('"mediaMetadata.videoCodec" = h264 AND "mediaMetadata.audioCodec" = aac', True),
        ('"mediaMetadata.videoCodec" = hevc', False),
        ('"mediaMetadata.width" >= 320 AND "mediaMetadata.height" < 241', True),
        ('"mediaMetadata.bitRate" > 100000', False),
    ],
)
async def test_checks_see_the_videos_metadata(
    upload_settings: Settings, clock: FakeClock, private_key: str, checks: str, stored: bool
) -> None:
    async with upload_client(upload_settings, clock) as http:
        response = await store(http, private_key, "clip.mp4", mf.mp4(2), checks=checks)
    assert response.status_code == (200 if stored else 400), response.text


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("cut.jpg", mf.camera_jpeg()[:400]),
        ("noise.mp4", b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 40),
        ("noise.heic", b"\x00\x00\x00\x18ftypheic" + bytes(range(256)) * 8),
    ],
)
async def test_a_file_no_library_can_read_is_stored_without_those_fields(
    upload_settings: Settings, clock: FakeClock, private_key: str, name: str, data: bytes
) -> None:
    async with upload_client(upload_settings, clock) as http:
        response = await store(http, private_key, name, data, responseFields="metadata")
        assert response.status_code == 200, response.text
        body = response.json()
        assert "duration" not in body
        assert "videoCodec" not in body
        assert body["metadata"]["size"] == len(data)
        assert (await http.get(f"/files/{name}")).content == data


async def test_without_media_workers_or_in_time_the_upload_goes_on(
    make_settings: Callable[..., Settings], storage_dir: Path, clock: FakeClock, private_key: str
) -> None:
    for settings in (
        make_settings(storage_dir=storage_dir, media_workers=0),
        make_settings(storage_dir=storage_dir, media_timeout=0.001),
    ):
        async with upload_client(settings, clock) as http:
            response = await store(http, private_key, "clip.mp4", mf.mp4(1))
            assert response.status_code == 200, response.text
            assert "duration" not in response.json()
            assert "thumbnailUrl" not in response.json()
            unread = await store(http, private_key, "a.jpeg", PHOTO, responseFields="metadata")
            # the format is named as when the file is read (ImageKit's "jpg")
            assert unread.json()["metadata"] == {"format": "jpg", "size": len(PHOTO)}


async def test_v1_client_uploads_get_the_same_metadata(
    upload_settings: Settings, clock: FakeClock, private_key: str
) -> None:
    async with upload_client(upload_settings, clock) as http:
        response = await http.post(
            V1,
            data={"fileName": "a.heic", "responseFields": "embeddedMetadata"},
            files={"file": ("a.heic", mf.image("heic", camera=True), "image/heif")},
            headers=basic(private_key),
        )
    assert response.json()["embeddedMetadata"]["Model"] == mf.CAMERA["Model"]


# -- the official SDKs' response types as the contract -------------------------------------------


async def test_answers_parse_as_the_python_sdks_response_model(
    answers: dict[str, dict[str, Any]],
) -> None:
    """imagekitio 5.x's ``FileUploadResponse``, strictly: a field of the wrong type fails (a
    string where a number belongs, a float where an int belongs), and every field we send is
    one of the model's."""
    known = {field.alias or name for name, field in FileUploadResponse.model_fields.items()}
    for name, body in answers.items():
        assert set(body) <= known, (name, set(body) - known)
        parsed = FileUploadResponse.model_validate(body, strict=True)
        assert parsed.file_id == body["fileId"]
        if name == "camera.jpg":
            assert parsed.metadata is not None
            assert parsed.metadata.exif is not None
            assert parsed.metadata.exif.image is not None
            assert parsed.metadata.exif.image.make == mf.CAMERA["Make"]
            assert parsed.metadata.exif.gps is not None
            assert parsed.metadata.exif.gps.gps_version_id == [2, 2, 0, 0]


async def test_answers_type_check_against_the_javascript_sdks_types(
    answers: dict[str, dict[str, Any]],
) -> None:
    """``tsc --strict`` accepts every answer as ``@imagekit/javascript``'s ``UploadResponse``
    and ``@imagekit/nodejs``'s ``FileUploadResponse``."""
    assert typescript_rejects(list(answers.values())) == ""
