"""ImageKit's ``pHash`` (``media.perceptual_hash``): the DCT perceptual hash as imagehash (the
library) computes it, bit for bit; in the answer's ``metadata`` when it is asked for."""

import io
import random

import imagehash
import pytest
from PIL import Image

from app.core.settings import Settings
from app.upload_api.media import perceptual_hash
from tests.support import media_files as mf
from tests.support.apps import FakeClock
from tests.support.uploads import V2, owner_upload, upload_client


def _saved(picture: Image.Image, fmt: str) -> Image.Image:
    out = io.BytesIO()
    picture.save(out, fmt)
    return Image.open(io.BytesIO(out.getvalue()))


def pictures() -> dict[str, Image.Image]:
    """Photos, noise, gradients (flat along an axis: many coefficients exactly zero), a flat
    colour, transparency, a palette, grey, CMYK: as a decoder hands them over."""
    made = {
        "camera jpeg": Image.open(io.BytesIO(mf.camera_jpeg(320, 240))),
        "noise png": _saved(Image.effect_noise((300, 200), 60), "PNG"),
        "horizontal gradient": Image.linear_gradient("L").resize((120, 90)),
        "vertical gradient": Image.linear_gradient("L").rotate(90).resize((90, 120)),
        "radial gradient": Image.radial_gradient("L").resize((64, 64)),
        "flat colour": Image.new("RGB", (50, 40), (10, 200, 30)),
        "rgba png": Image.open(io.BytesIO(mf.image("png", 200, 100))),
        "palette gif": Image.open(io.BytesIO(mf.image("gif", 90, 60))),
        "webp": Image.open(io.BytesIO(mf.image("webp", 70, 50))),
        "cmyk jpeg": _saved(Image.effect_noise((64, 48), 30).convert("CMYK"), "JPEG"),
        "tiny": Image.effect_noise((5, 3), 80),
    }
    chance = random.Random(30)  # noqa: S311 - sizes of test pictures, not secrets
    for index in range(20):
        size = (chance.randint(8, 400), chance.randint(8, 400))
        made[f"random {index}"] = _saved(Image.effect_noise(size, chance.randint(5, 120)), "PNG")
    return made


@pytest.mark.parametrize(("name", "picture"), list(pictures().items()))
def test_the_hash_is_imagehashs(name: str, picture: Image.Image) -> None:
    """Bit for bit imagehash's ``phash`` of the same picture, 16 hex digits."""
    expected = str(imagehash.phash(picture.copy()))
    found = perceptual_hash(picture)
    assert found == expected, name
    assert len(found) == 16


def test_a_large_jpeg_is_hashed_whole() -> None:
    """A 12-megapixel JPEG: decoded whole, as imagehash decodes it (read at a smaller scale,
    its hash would be 8 to 20 bits away), so the same hash."""
    photo = Image.linear_gradient("L").resize((4000, 3000)).convert("RGB")
    photo = Image.blend(photo, Image.effect_noise((4000, 3000), 20).convert("RGB"), 0.3)
    assert perceptual_hash(_saved(photo, "JPEG")) == str(imagehash.phash(_saved(photo, "JPEG")))


@pytest.mark.anyio
async def test_the_answers_metadata_has_the_hash(
    upload_settings: Settings, clock: FakeClock, private_key: str
) -> None:
    """Asked for ``metadata``: a decodable image's ``pHash``, the same for the same picture in
    another format; none for what is not decoded (EPS) or not an image."""
    picture = Image.effect_noise((160, 120), 50).convert("RGB")
    async with upload_client(upload_settings, clock) as http:
        hashes = {}
        for name, fmt in (("a.png", "PNG"), ("b.webp", "WEBP"), ("c.bmp", "BMP")):
            out = io.BytesIO()
            picture.save(out, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
            answer = await owner_upload(
                http, private_key, name, out.getvalue(), endpoint=V2, responseFields="metadata"
            )
            hashes[name] = answer.json()["metadata"]["pHash"]
        assert len(set(hashes.values())) == 1
        assert hashes["a.png"] == str(imagehash.phash(picture))
        plain = await owner_upload(http, private_key, "d.png", mf.image("png", 50, 40), endpoint=V2)
        assert "metadata" not in plain.json()  # not asked: not decoded for a hash either
        for name, data in (("print.eps", mf.eps(150, 90)), ("song.mp3", mf.mp3(1))):
            answer = await owner_upload(
                http, private_key, name, data, endpoint=V2, responseFields="metadata"
            )
            assert "pHash" not in answer.json()["metadata"], name
