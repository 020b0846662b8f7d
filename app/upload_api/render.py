"""Rendering a transformation plan (``app.core.imagekit.transformations``) in a media worker:
bounded by the worker's time and memory limits and by Pillow's decompression-bomb guard
(``media.MAX_DECODED_PIXELS``, checked on the header before anything is decoded), as every
decode is.

Two libraries, each where it is the faster (``python -m bench.render``: in one process, one
thread, for the sizes delivery serves; docs/performance.md, #32). A JPEG is first decoded at
the smallest of JPEG's scales (1/2, 1/4, 1/8, applied as it is read) that still covers the
size asked for; then a first resize that reduces what was read, when that is at least
``VIPS_FROM`` pixels, is **libvips'** (pyvips): the same Lanczos 3 at up to several times
Pillow's speed (2 MP to 1,200 pixels wide: 29 ms against 47; 12 MP to 2,010: 111 against 305).
Below that, setting libvips up costs more than its resize saves (2 MP to 390 pixels, read at
400: 14.0 ms against 12.3), and the resize is **Pillow's**, as is everything else: enlarging,
the other operations, every encoder, the formats and colour modes below. libvips hands its
pixels over in memory.
"""

import functools
from typing import Any, Final, Literal

from app.core.imagekit.transformations import Operation, TransformationError, operations
from app.upload_api import media

Rendered = Literal["made", "undecodable", "unwritable", "too-large"]

_SAVE: Final = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF", "gif": "GIF"}
#: AVIF's encoder effort: 0 (slowest, smallest) to 10; 8 keeps a first render of a large
#: image within a second.
_AVIF_SPEED: Final = 8

#: Pixels read (after JPEG's scaling) from which libvips makes a reduction.
VIPS_FROM: Final = 250_000
#: What libvips resizes here: the common web formats, in the modes Pillow and libvips read
#: alike (CMYK, 16-bit and the rest stay with Pillow).
_VIPS_FORMATS: Final = frozenset({"JPEG", "PNG", "WEBP"})
_VIPS_MODES: Final = frozenset({"L", "LA", "RGB", "RGBA", "P"})
_MODES: Final = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def _colour(hex_text: str) -> tuple[int, ...]:
    return tuple(int(hex_text[i : i + 2], 16) for i in range(0, len(hex_text), 2))


def _apply(picture: Any, op: Operation) -> Any:
    from PIL import Image

    if op.kind == "resize":
        return picture.resize(op.box[2:], Image.Resampling.LANCZOS, reducing_gap=3.0)
    left, top, right, bottom = op.box
    if left >= 0 and top >= 0 and right <= picture.width and bottom <= picture.height:
        return picture.crop(op.box)
    fill = _colour(op.background)
    mode = "RGBA" if len(fill) == 4 or "A" in picture.getbands() else "RGB"
    canvas = Image.new(mode, (right - left, bottom - top), fill)
    canvas.paste(picture.convert(mode), (-left, -top))
    return canvas


def _step(picture: Any, step: dict[str, Any], ops: list[Operation]) -> Any:
    from PIL import Image, ImageFilter

    for op in ops:
        picture = _apply(picture, op)
    if step.get("rt"):
        turns = {90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180}
        picture = picture.transpose(turns.get(step["rt"], Image.Transpose.ROTATE_90))
    if "bl" in step:
        picture = picture.filter(ImageFilter.GaussianBlur(step["bl"] / 2))
    if step.get("grayscale"):
        alpha = picture.getchannel("A") if "A" in picture.getbands() else None
        picture = picture.convert("L").convert("RGB")
        if alpha is not None:
            picture.putalpha(alpha)
    return picture


def render(source: str, target: str, plan: dict[str, Any], kind: str) -> Rendered:
    """Write ``source`` (an image, or a video's first frame) transformed by ``plan`` to
    ``target``, encoded as ``plan["format"]``. A JPEG whose first operation is a resize is
    decoded at the smallest of JPEG's scales that still covers it (draft mode); a first
    resize that reduces is libvips'."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        opened = (
            media.first_frame(source) if kind == "video" else media.open_image(source, decode=True)
        )
        if opened is None:
            return "undecodable"
        with opened:
            turned = _turned(opened)
            # Each step's operations from the size before it: the first from the image's own
            # (upright), not the draft's.
            size = opened.size[::-1] if turned else opened.size
            steps = plan["steps"]
            first = operations(steps[0], size)[0] if steps else []
            picture = None
            if first and first[0].kind == "resize":
                wanted = first[0].box[2:]
                stored = wanted[::-1] if turned else wanted
                vips = opened.format in _VIPS_FORMATS and opened.mode in _VIPS_MODES
                full = opened.size
                if opened.format == "JPEG":
                    opened.draft("RGB", stored)
                read = opened.size
                pixels = read[0] * read[1]
                if vips and pixels >= VIPS_FROM and pixels > stored[0] * stored[1]:
                    resized = _vips_resized(source, full[0] // read[0], stored)
                    # None: 16 bits a sample, which Pillow reads its own way (8 bits)
                    if resized is not None and resized.size == wanted:  # the same orientation
                        picture, first = resized, first[1:]
            if picture is None:
                picture = ImageOps.exif_transpose(opened)
            if picture.mode not in ("RGB", "RGBA"):  # palette, grey, CMYK, 16-bit...
                alpha = "A" in picture.getbands() or "transparency" in picture.info
                picture = picture.convert("RGBA" if alpha else "RGB")
            for index, step in enumerate(steps):
                ops = first if index == 0 else operations(step, picture.size)[0]
                picture = _step(picture, step, ops)
    except TransformationError:  # the real image is larger than its record said
        return "too-large"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return "undecodable"
    return _save(picture, target, plan)


@functools.cache
def vips() -> Any:
    """libvips, set up for a media worker: one thread (the pool has a worker per core), and no
    cache of operations or open files kept between tasks (a file replaced under the same name
    is read anew)."""
    import pyvips

    pyvips.concurrency_set(1)
    pyvips.cache_set_max(0)
    pyvips.cache_set_max_files(0)
    return pyvips


def _vips_resized(source: str, shrink: int, stored: tuple[int, int]) -> Any | None:
    """``source`` read at ``1/shrink`` of its size (a JPEG's scale), resized to ``stored`` (its
    size as stored) by libvips, then turned upright, as a Pillow image; None for 16 bits a
    sample (Pillow reads them its own way). Read in one pass: the turn is made on the resized
    image, in memory. A truncated file fails as it does in Pillow."""
    from PIL import Image

    pyvips = vips()
    options = {"shrink": shrink} if shrink > 1 else {}
    try:
        image = pyvips.Image.new_from_file(
            source, access="sequential", fail_on="truncated", **options
        )
        if image.format != "uchar":
            return None
        alpha = image.hasalpha()
        if alpha:  # resized premultiplied, as Pillow does: no colour bleeds from clear pixels
            image = image.premultiply()
        image = image.resize(
            stored[0] / image.width, vscale=stored[1] / image.height, kernel="lanczos3"
        )
        if alpha:
            image = image.unpremultiply().cast("uchar")
        image = image.copy_memory().autorot()
        pixels = image.write_to_memory()
    except pyvips.Error as exc:
        raise OSError(f"libvips: {exc.message}") from None
    return Image.frombytes(_MODES[image.bands], (image.width, image.height), pixels)


def _turned(image: Any) -> bool:
    """Whether the EXIF orientation turns the image a quarter (its sides swap)."""
    try:
        return image.getexif().get(0x0112, 1) in (5, 6, 7, 8)
    except Exception:  # an unreadable EXIF block: shown as stored
        return False


def _save(picture: Any, target: str, plan: dict[str, Any]) -> Rendered:
    from PIL import Image

    chosen = plan["format"]
    options: dict[str, Any] = {"quality": plan["quality"]}
    if chosen == "jpg":
        if "A" in picture.getbands():  # JPEG has no transparency: flattened on white
            flat = Image.new("RGB", picture.size, (255, 255, 255))
            flat.paste(picture, mask=picture.getchannel("A"))
            picture = flat
        elif picture.mode != "RGB":
            picture = picture.convert("RGB")
        options["progressive"] = plan["progressive"]
        options["optimize"] = plan["progressive"]
    elif chosen == "webp":
        options["lossless"] = plan["lossless"]
        options["method"] = 4
    elif chosen == "avif":
        options["speed"] = _AVIF_SPEED
    elif chosen in ("png", "gif"):
        options = {}
    try:
        picture.save(target, _SAVE[chosen], **options)
    except OSError as exc:
        if exc.errno is None:  # an encoder's complaint, not the file system's
            return "undecodable"
        return "unwritable"
    return "made"
