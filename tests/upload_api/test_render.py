"""The renderer's two libraries (``app.upload_api.render``): a first resize that reduces is
libvips', the rest Pillow's; whichever resized it, the picture is the one Pillow's own Lanczos
makes of the full image, upright, in the same colour mode, and a broken file is refused the
same way."""

import io
import math
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageOps, ImageStat

from app.core.imagekit.transformations import parse
from app.upload_api import render

RED = (255, 0, 0)


def source(mode: str, size: tuple[int, int] = (1200, 900)) -> Image.Image:
    """A smooth picture (a photo's low frequencies) with a red square in its top-left corner."""
    width, height = size
    picture = Image.linear_gradient("L").resize(size).convert("RGB")
    picture.paste(Image.linear_gradient("L").rotate(90).resize(size), (0, 0))
    picture = Image.merge(
        "RGB",
        (
            picture.getchannel(0),
            Image.new("L", size, 90),
            picture.getchannel(0).transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        ),
    )
    picture.paste(RED, (0, 0, width // 5, height // 5))
    if mode in ("RGBA", "LA"):
        # from half to fully opaque: every corner is seen
        picture.putalpha(Image.linear_gradient("L").resize(size).point(lambda v: 128 + v // 2))
    if mode == "P":
        return picture.quantize(64)
    return picture.convert(mode)


def saved(picture: Image.Image, fmt: str, folder: Path, orientation: int = 1) -> str:
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    options: dict[str, Any] = {"exif": exif}
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = 95
    picture.save(out, fmt, **options)
    path = folder / f"source.{fmt.lower()}"
    path.write_bytes(out.getvalue())
    return str(path)


def rendered(path: str, text: str, folder: Path) -> Image.Image:
    plan = parse(text).with_format("png")
    target = folder / "out.png"
    assert render.render(path, str(target), plan.to_worker(), "image") == "made"
    with Image.open(target) as picture:
        picture.load()
        return picture


def psnr(one: Image.Image, other: Image.Image) -> float:
    stats = ImageStat.Stat(ImageChops.difference(one, other))
    mse = sum(stats.sum2) / (one.width * one.height * len(stats.sum2))
    return 10 * math.log10(255**2 / mse) if mse else math.inf


def visible(picture: Image.Image) -> Image.Image:
    """What is seen of ``picture`` over black: the colour of a clear pixel is not."""
    if "A" not in picture.getbands():
        return picture
    black = Image.new("RGB", picture.size)
    return Image.composite(picture.convert("RGB"), black, picture.getchannel("A"))


@pytest.fixture
def vips_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every libvips resize the renderer made, with what it gave back."""
    calls: list[Any] = []
    original = render._vips_resized

    def counted(*args: Any) -> Any:
        made = original(*args)
        calls.append(made)
        return made

    monkeypatch.setattr(render, "_vips_resized", counted)
    return calls


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [
        ("JPEG", "RGB"),
        ("JPEG", "L"),
        ("PNG", "RGB"),
        ("PNG", "RGBA"),
        ("PNG", "L"),
        ("PNG", "LA"),
        ("PNG", "P"),
        ("WEBP", "RGB"),
        ("WEBP", "RGBA"),
    ],
)
@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_reduction_by_libvips_is_the_picture_pillow_makes(
    tmp_path: Path, vips_calls: list[Any], fmt: str, mode: str, orientation: int
) -> None:
    """Reduced by libvips: the size ImageKit's semantics give, upright by the EXIF
    orientation (the red corner where Pillow puts it), the colour mode Pillow gives, and what
    is seen is Pillow's Lanczos of the full image (within JPEG's own loss)."""
    path = saved(source(mode), fmt, tmp_path, orientation)
    picture = rendered(path, "w-550", tmp_path)  # not one of JPEG's own scales
    assert vips_calls
    assert vips_calls[0] is not None  # libvips did resize...
    assert vips_calls[0].size == picture.size  # ...and its picture was kept
    with Image.open(path) as opened:
        upright = ImageOps.exif_transpose(opened)
        alpha = "A" in upright.getbands() or "transparency" in upright.info
        full = upright.convert("RGBA" if alpha else "RGB")
    expected = full.resize(picture.size, Image.Resampling.LANCZOS)
    assert picture.width == 550
    assert abs(picture.height - 550 * full.height / full.width) <= 0.5
    assert picture.mode == expected.mode
    assert psnr(visible(picture), visible(expected)) > 45
    assert visible(picture).getpixel((2, 2)) == pytest.approx(
        visible(expected).getpixel((2, 2)), abs=24
    )


def test_a_jpeg_is_read_at_its_smallest_scale_then_reduced_by_libvips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 3,200-pixel JPEG asked at 700: read at 1/4 (800 pixels), the rest by libvips."""
    shrinks: list[int] = []
    original = render._vips_resized

    def watched(path: str, shrink: int, size: tuple[int, int]) -> Any:
        shrinks.append(shrink)
        return original(path, shrink, size)

    monkeypatch.setattr(render, "_vips_resized", watched)
    path = saved(source("RGB", (3200, 2400)), "JPEG", tmp_path)
    picture = rendered(path, "w-700", tmp_path)
    assert shrinks == [4]
    assert picture.size == (700, 525)


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("PNG", "w-1500"),
        ("PNG", "w-1200"),
        ("PNG", "cm-extract,w-100,h-100"),
        ("JPEG", "w-290"),  # read at 1/4: 300 x 225, too few pixels for libvips to pay
    ],
)
def test_what_does_not_reduce_much_stays_with_pillow(
    tmp_path: Path, vips_calls: list[Any], fmt: str, text: str
) -> None:
    """Enlarging, keeping the size, cutting out, and reducing what little JPEG's scales
    leave are Pillow's."""
    path = saved(source("RGB"), fmt, tmp_path)
    rendered(path, text, tmp_path)
    assert vips_calls == []


def test_sixteen_bits_a_sample_are_left_to_pillow(tmp_path: Path, vips_calls: list[Any]) -> None:
    """A 16-bit PNG (which Pillow reads as 8 bits): libvips declines, Pillow resizes it, and
    its colour is right."""
    import pyvips

    grey = pyvips.Image.black(900, 600).new_from_image([32768, 16384, 65535])
    path = tmp_path / "deep.png"
    grey.cast("ushort").copy(interpretation="rgb16").pngsave(str(path))
    picture = rendered(str(path), "w-300", tmp_path)
    assert vips_calls == [None]
    assert picture.size == (300, 200)
    with Image.open(path) as opened:
        assert picture.getpixel((150, 100)) == opened.convert("RGB").getpixel((450, 300))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_a_truncated_image_is_undecodable_on_either_path(tmp_path: Path, fmt: str) -> None:
    """Cut in half: refused whether libvips (a reduction) or Pillow (an enlargement) reads it,
    never rendered with a grey half."""
    out = io.BytesIO()
    Image.effect_noise((1200, 900), 40).convert("RGB").save(out, fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(out.getvalue()[: len(out.getvalue()) // 2])
    for text in ("w-500", "w-1500"):
        plan = parse(text).with_format("jpg").to_worker()
        assert render.render(str(path), str(tmp_path / "out.jpg"), plan, "image") == "undecodable"
