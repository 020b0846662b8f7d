"""Rendering a transformation plan (``app.core.imagekit.transformations``) with Pillow, in a media
worker: bounded by the worker's time and memory limits and by Pillow's decompression-bomb
guard (``media.MAX_DECODED_PIXELS``), as every decode is.

Pillow rather than libvips (pyvips): measured on this machine's 2 cores for the sizes delivery
serves (docs/performance.md, #32), Pillow with JPEG's draft mode (the decoder scales by 1/2,
1/4 or 1/8 as it reads) resized a 12-megapixel JPEG to 300 pixels in 42 ms against 60 ms, and
it is already the workers' library.
"""

from typing import Any, Final, Literal

from app.core.imagekit.transformations import Operation, TransformationError, operations
from app.upload_api import media

Rendered = Literal["made", "undecodable", "unwritable", "too-large"]

_SAVE: Final = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF", "gif": "GIF"}
#: AVIF's encoder effort: 0 (slowest, smallest) to 10; 8 keeps a first render of a large
#: image within a second.
_AVIF_SPEED: Final = 8


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
    decoded at the smallest of JPEG's scales that still covers it (draft mode)."""
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
            if first and first[0].kind == "resize" and opened.format == "JPEG":
                wanted = first[0].box[2:]
                opened.draft("RGB", wanted[::-1] if turned else wanted)
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
