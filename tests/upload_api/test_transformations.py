"""Delivery with ImageKit's URL transformations: the URLs the official SDKs build (Python's
``build_url``, ``@imagekit/nodejs``'s and ``@imagekit/javascript``'s ``buildSrc``, the browser
SDK's ``srcset``, the older ``imagekit``'s ``url``; path and query forms, signed and not) return
the transformed image, checked by decoding it; renders are kept per version and made once
however many ask at the same moment; private files and, when the operator asks, public ones
refuse unsigned transformations; what cannot be rendered is refused in ImageKit's shape."""

import asyncio
import io
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from imagekitio import ImageKit
from PIL import Image

from app.core.imagekit.transformations import parse
from app.core.settings import Settings
from app.upload_api import delivery, parts
from app.upload_api.workers import MediaWorkers
from tests.support import media_files as mf
from tests.support.apps import FakeClock
from tests.support.uploads import owner_stored, upload_client

pytestmark = pytest.mark.anyio

#: Not the upload API's own host: @imagekit/javascript mangles an endpoint whose host
#: contains its path (``//files.test/files``).
ENDPOINT = "http://media.test/files"


@pytest.fixture
def delivery_settings(
    make_settings: Callable[..., Settings], storage_dir: Path, either_storage: dict[str, Any]
) -> Settings:
    return make_settings(storage_dir=storage_dir, public_url="http://media.test", **either_storage)


@pytest.fixture
def local_settings(make_settings: Callable[..., Settings], storage_dir: Path) -> Settings:
    return make_settings(storage_dir=storage_dir, public_url="http://media.test")


def decoded(response: httpx.Response) -> tuple[str, tuple[int, int], str]:
    assert response.status_code == 200, response.text
    with Image.open(io.BytesIO(response.content)) as picture:
        return str(picture.format), picture.size, picture.mode


def js_urls(now: int, private_key: str, cases: list[dict[str, Any]]) -> list[list[str]]:
    """The URLs ImageKit's JavaScript SDKs build for ``cases`` at ``now``."""
    node = shutil.which("node")
    assert node is not None, "node is needed (./scripts/setup --test installs it)"
    script = Path(__file__).with_name("node_transform_urls.js")
    given = {"now": now, "privateKey": private_key, "urlEndpoint": ENDPOINT, "cases": cases}
    result = subprocess.run(
        [node, str(script)], input=json.dumps(given), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


async def test_the_sdks_urls_return_the_transformed_image(
    delivery_settings: Settings, clock: FakeClock, private_key: str
) -> None:
    """Every SDK's URL for the same transformations, path and query form, gives an image of
    the size ImageKit's semantics give, in the format asked; a camera JPEG (EXIF orientation
    6, stored 640 x 480) is upright: 480 x 640."""
    async with upload_client(delivery_settings, clock) as http:
        body = await owner_stored(http, private_key, "photo.jpg", mf.camera_jpeg(640, 480))
        path = body["filePath"]
        helper = ImageKit(private_key=private_key).helper
        steps: Any = [{"width": 300, "height": 200, "crop": "at_max"}, {"format": "webp"}]
        python = [
            helper.build_url(src=path, url_endpoint=ENDPOINT, transformation=steps),
            helper.build_url(
                src=path,
                url_endpoint=ENDPOINT,
                transformation=steps,
                transformation_position="path",
            ),
        ]
        js_steps = [{"width": 300, "height": 200, "crop": "at_max"}, {"format": "webp"}]
        cases = [
            {"sdk": sdk, "options": {"src": path, "transformation": js_steps, **where}}
            for sdk in ("nodejs", "javascript")
            for where in ({}, {"transformationPosition": "path"})
        ]
        cases.append({"sdk": "imagekit", "options": {"path": path, "transformation": js_steps}})
        urls = python + [
            url for built in js_urls(int(clock()), private_key, cases) for url in built
        ]
        assert any("?tr=" in url for url in urls)
        assert any("/tr:" in url for url in urls)
        for url in urls:
            assert decoded(await http.get(url)) == ("WEBP", (150, 200), "RGB"), url
        crops = {
            "w-100,h-100": (100, 100),
            "w-100,h-100,c-force": (100, 100),
            "w-100,h-100,c-at_least": (100, 133),
            "w-100,h-100,cm-pad_resize,bg-FF0000": (100, 100),
            "w-0.25": (120, 160),
            "h-64:rt-90": (64, 48),
            "w-100,h-100,cm-extract,fo-top_left": (100, 100),
            "w-2000,c-at_max": (480, 640),
        }
        for text, size in crops.items():
            assert decoded(await http.get(f"{body['url']}?tr={text}"))[1] == size, text
        padded = await http.get(f"{body['url']}?tr=w-100,h-300,cm-pad_resize,bg-FF0000,f-png")
        with Image.open(io.BytesIO(padded.content)) as picture:
            assert picture.convert("RGB").getpixel((50, 2)) == (255, 0, 0)  # the padding


async def test_srcset_candidates_are_each_the_width_they_name(
    local_settings: Settings, clock: FakeClock, private_key: str
) -> None:
    """The browser SDK's responsive attributes: each srcset URL (``w-N,c-at_max``) is N
    pixels wide, or the image's own width where N is larger (never enlarged)."""
    async with upload_client(local_settings, clock) as http:
        body = await owner_stored(http, private_key, "wide.png", mf.image("png", 1000, 500))
        [urls] = js_urls(
            int(clock()),
            private_key,
            [{"sdk": "srcset", "options": {"src": body["filePath"], "sizes": "50vw"}}],
        )
        assert len(urls) > 5
        for url in urls:
            asked = int(url.split("tr=w-")[1].split(",")[0])
            fmt, size, mode = decoded(await http.get(url))
            assert (fmt, mode) == ("PNG", "RGBA")  # the stored format, transparency kept
            assert size[0] == min(asked, 1000), url


async def test_f_auto_follows_accept_and_says_so(
    local_settings: Settings, clock: FakeClock, private_key: str
) -> None:
    async with upload_client(local_settings, clock) as http:
        body = await owner_stored(http, private_key, "photo.jpg", mf.camera_jpeg(320, 240))
        url = body["url"] + "?tr=w-100,f-auto"
        webp = await http.get(url, headers={"Accept": "image/avif,image/webp,*/*"})
        assert decoded(webp)[0] == "WEBP"
        assert webp.headers["content-type"] == "image/webp"
        assert "Accept" in webp.headers["vary"].split(", ")
        jpeg = await http.get(url, headers={"Accept": "*/*"})
        assert decoded(jpeg)[0] == "JPEG"
        assert jpeg.headers["etag"] != webp.headers["etag"]
        plain = await http.get(body["url"] + "?tr=w-100")
        assert "Accept" not in plain.headers.get("vary", "")


async def test_renders_are_kept_made_once_and_answer_304(
    delivery_settings: Settings, clock: FakeClock, private_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twenty requests at once for a new rendering make one render; later requests are served
    from what was kept; a conditional request gets 304; a new version is rendered anew, and
    the old version's renders are removed."""
    calls: list[str] = []
    original = MediaWorkers.render

    async def counted(self: MediaWorkers, *args: Any) -> Any:
        calls.append(str(args[0]))
        return await original(self, *args)

    monkeypatch.setattr(MediaWorkers, "render", counted)
    async with upload_client(delivery_settings, clock) as http:
        body = await owner_stored(
            http, private_key, "photo.jpg", mf.camera_jpeg(640, 480), useUniqueFileName="false"
        )
        url = body["url"] + "?tr=w-120,h-90,q-70"
        answers = await asyncio.gather(*(http.get(url) for _ in range(20)))
        assert {a.status_code for a in answers} == {200}
        assert len({a.content for a in answers}) == 1
        assert len(calls) == 1
        again = await http.get(url)
        assert again.content == answers[0].content
        assert len(calls) == 1
        etag = again.headers["etag"]
        assert (await http.get(url, headers={"If-None-Match": etag})).status_code == 304
        first = await owner_lookup(delivery_settings, body["filePath"])
        name = delivery.choose(first, parse("w-120,h-90,q-70"), "", auto_avif=False).name
        await owner_stored(
            http,
            private_key,
            "photo.jpg",
            mf.camera_jpeg(320, 240),
            useUniqueFileName="false",
            overwriteFile="true",
        )
        fresh = await http.get(url, headers={"If-None-Match": etag})
        assert fresh.status_code == 200
        assert fresh.headers["etag"] != etag
        assert len(calls) == 2
    storage = parts.storage(delivery_settings)
    try:  # the replaced version's renders went with it
        assert not await storage.has_derived(first, name)
    finally:
        await storage.stop()


async def test_unsigned_transformations_of_private_files_are_refused(
    make_settings: Callable[..., Settings], storage_dir: Path, clock: FakeClock, private_key: str
) -> None:
    """A private file's transformation only through a signed URL (the SDKs sign the
    transformation with the path: another transformation under the same signature is
    refused); with ``delivery_signed_transformations`` a public file's too, its original
    still open."""
    settings = make_settings(
        storage_dir=storage_dir,
        public_url="http://media.test",
        delivery_signed_transformations=True,
    )
    async with upload_client(settings, clock) as http:
        private = await owner_stored(
            http, private_key, "secret.jpg", mf.camera_jpeg(320, 240), isPrivateFile="true"
        )
        public = await owner_stored(http, private_key, "open.jpg", mf.camera_jpeg(320, 240))
        helper = ImageKit(private_key=private_key).helper
        for stored in (private, public):
            steps: Any = [{"width": 50}]
            unsigned = helper.build_url(
                src=stored["filePath"], url_endpoint=ENDPOINT, transformation=steps
            )
            assert (await http.get(unsigned)).status_code == 401
            for position in ("query", "path"):
                signed = helper.build_url(
                    src=stored["filePath"],
                    url_endpoint=ENDPOINT,
                    transformation=steps,
                    transformation_position=position,
                    signed=True,
                )
                assert decoded(await http.get(signed))[1] == (50, 67)  # upright
            other = signed.replace("tr:w-50", "tr:w-4000")
            refused = await http.get(other)
            assert refused.status_code == 401
            assert set(refused.json()) == {"message", "help"}
        assert (await http.get(public["url"])).status_code == 200


@pytest.mark.parametrize(
    ("transformation", "status", "words"),
    [
        ("e-bgremove", 400, "not supported"),
        ("l-image,i-logo.png,l-end", 400, "not supported"),
        ("w-abc1", 400, "not supported"),
        ("w-1x", 400, "Invalid"),
        ("c-stretch,w-10,h-10", 400, "Invalid"),
        ("w-8000,h-8000,c-force", 400, "pixels"),
        ("n-nothing", 400, "named"),
    ],
)
async def test_refusals_are_imagekits_shape_never_the_original(
    uploads: httpx.AsyncClient, private_key: str, transformation: str, status: int, words: str
) -> None:
    body = await owner_stored(uploads, private_key, "photo.jpg", mf.camera_jpeg(320, 240))
    for url in (
        f"{body['url']}?tr={transformation}",
        body["url"].replace("/files/", f"/files/tr:{transformation}/"),
    ):
        refused = await uploads.get(url)
        assert refused.status_code == status, url
        assert set(refused.json()) == {"message", "help"}
        assert words in refused.json()["message"]


async def test_what_cannot_be_rendered_is_refused_not_served(
    uploads: httpx.AsyncClient, private_key: str
) -> None:
    """A text file, a video (but for ImageKit's thumbnail of it), an image too large to
    decode and one whose bytes are broken: 400 for a transformation, 404 for the thumbnail
    of what has none; ``orig-true`` serves the original."""
    text = await owner_stored(uploads, private_key, "notes.txt", b"just words\n")
    refused = await uploads.get(text["url"] + "?tr=w-100")
    assert refused.status_code == 400
    assert "cannot be transformed" in refused.json()["message"]
    thumbnail = text["url"].replace("/files/", "/files/tr:n-ik_ml_thumbnail/")
    assert (await uploads.get(thumbnail)).status_code == 404
    video = await owner_stored(uploads, private_key, "clip.mp4", mf.mp4(1, 320, 240))
    assert (await uploads.get(video["url"] + "?tr=w-100")).status_code == 400
    assert decoded(await uploads.get(video["thumbnailUrl"]))[:2] == ("WEBP", (200, 150))
    assert decoded(await uploads.get(video["url"] + "?tr=n-ik_ml_thumbnail"))[1] == (200, 150)
    broken = mf.camera_jpeg(320, 240)
    stored = await owner_stored(uploads, private_key, "broken.jpg", broken[:600])
    answer = await uploads.get(stored["url"] + "?tr=w-100")
    assert answer.status_code == 400
    assert "cannot be transformed" in answer.json()["message"]
    photo = await owner_stored(uploads, private_key, "photo.jpg", mf.camera_jpeg(320, 240))
    original = await uploads.get(photo["url"] + "?tr=orig-true")
    assert original.content == (await uploads.get(photo["url"])).content


async def test_a_decompression_bomb_is_refused_not_rendered(
    uploads: httpx.AsyncClient, private_key: str
) -> None:
    """A PNG that declares 40,000 x 30,000 pixels in a few KB: its size is recorded, no
    thumbnail or transformation is rendered (400), and the server stays up."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", 40_000, 30_000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
    bomb += chunk(b"IDAT", zlib.compress(bytes(1_000_000))) + chunk(b"IEND", b"")
    body = await owner_stored(uploads, private_key, "bomb.png", bomb)
    refused = await uploads.get(body["url"] + "?tr=w-100")
    assert refused.status_code == 400
    assert (await uploads.get(body["url"] + "?tr=n-ik_ml_thumbnail")).status_code == 404
    assert (await uploads.get(body["url"])).status_code == 200


async def test_named_transformations_from_the_settings(
    make_settings: Callable[..., Settings], storage_dir: Path, clock: FakeClock, private_key: str
) -> None:
    settings = make_settings(
        storage_dir=storage_dir,
        public_url="http://media.test",
        delivery_named_transformations={"card": "w-64,h-64:f-png"},
    )
    async with upload_client(settings, clock) as http:
        body = await owner_stored(http, private_key, "photo.jpg", mf.camera_jpeg(320, 240))
        assert decoded(await http.get(body["url"] + "?tr=n-card")) == ("PNG", (64, 64), "RGB")
    with pytest.raises(ValueError, match="card"):
        make_settings(delivery_named_transformations={"card": "e-bgremove"})


async def test_the_cache_keeps_to_its_size(
    delivery_settings: Settings, clock: FakeClock, private_key: str
) -> None:
    """Past the cache's size the oldest renders go, the newest stays (and is served from the
    cache again)."""
    async with upload_client(delivery_settings, clock) as http:
        body = await owner_stored(http, private_key, "photo.jpg", mf.camera_jpeg(640, 480))
        for width in range(100, 250, 30):
            assert (await http.get(f"{body['url']}?tr=w-{width}")).status_code == 200
        await asyncio.sleep(1.1)  # a bucket's times are in whole seconds
        newest = await http.get(f"{body['url']}?tr=w-400")
    storage = parts.storage(delivery_settings)
    await storage.start(stale_after=60)
    try:
        assert await storage.trim_derived(len(newest.content) + 1) == 5
    finally:
        await storage.stop()
    async with upload_client(delivery_settings, clock) as http:
        stored = await owner_lookup(delivery_settings, body["filePath"])
        rendition = delivery.choose(stored, parse("w-400"), "", auto_avif=False)
        storage = parts.storage(delivery_settings)
        assert await storage.has_derived(stored, rendition.name)
        assert not await storage.has_derived(
            stored, delivery.choose(stored, parse("w-100"), "", auto_avif=False).name
        )
        await storage.stop()
        assert (await http.get(f"{body['url']}?tr=w-400")).content == newest.content


async def owner_lookup(settings: Settings, file_path: str) -> Any:
    storage = parts.storage(settings)
    try:
        return await storage.lookup(file_path)
    finally:
        await storage.stop()


@pytest.mark.parametrize(
    ("mode", "name", "fmt", "out_mode"),
    [
        ("L", "grey.jpg", "JPEG", "RGB"),
        ("LA", "grey.png", "PNG", "RGBA"),
        ("P", "palette.gif", "GIF", "P"),  # kept a GIF, whose pixels are a palette
        ("CMYK", "print.jpg", "JPEG", "RGB"),
    ],
)
async def test_every_colour_mode_renders_in_every_format(
    uploads: httpx.AsyncClient, private_key: str, mode: str, name: str, fmt: str, out_mode: str
) -> None:
    """Grey, grey with alpha, palette and CMYK images render to every output format, padded
    with a transparent background too; in their own format, transparency is kept."""
    picture = Image.new(mode, (64, 48))
    data = io.BytesIO()
    picture.save(data, fmt)
    body = await owner_stored(uploads, private_key, name, data.getvalue())
    for output in ("jpg", "png", "webp", "gif"):
        url = f"{body['url']}?tr=w-32,h-32,cm-pad_resize,bg-00000000,f-{output}"
        assert decoded(await uploads.get(url))[1] == (32, 32), (name, output)
    assert decoded(await uploads.get(body["url"] + "?tr=w-32"))[2] == out_mode
