"""ImageKit's URL transformations, read and checked: ``w-300,h-200,c-at_max:f-auto`` from a
delivery URL's path (``/tr:.../``) or query (``?tr=...``) becomes a plan that a media worker
renders (``app.upload_api.render``). Pure: no I/O, no imaging library.

A transformation is a chain of steps (``:``), each a list of parameters (``,``), each
``key-value``. Each step applies to the result of the one before; the output options (``f``,
``q``, ``pr``, ``lo``) apply to the encoding at the end, the last given winning. What this
server does not render (video transformations, overlays, AI effects, arithmetic
expressions...) is refused with a 400 naming it, never ignored: the original is never served
where a transformed image was asked for.

Semantics follow ImageKit's docs (image resize and crop): ``w``/``h`` in pixels, or a
fraction of the input under 1; ``ar-W-H`` with one of them gives the other; with both, ``c-``
decides: ``maintain_ratio`` (the default: cover, then crop at ``fo``), ``force`` (squeeze),
``at_max`` (fit inside, never enlarged), ``at_max_enlarge`` (fit inside), ``at_least`` (cover,
no crop); ``cm-`` ``pad_resize`` (fit inside, padded with ``bg`` to the size, placed by
``fo``), ``extract`` (the region at ``fo`` or ``x``/``y``/``xc``/``yc``, no resizing) and
``pad_extract`` (the same, padded where the region leaves the image).
"""

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

#: ImageKit's named transformation for the media library's thumbnail: fits in 200 x 200,
#: WebP (what ``/files/tr:n-ik_ml_thumbnail/...`` has always served here).
THUMBNAIL_NAME: Final = "ik_ml_thumbnail"
BUILT_IN_NAMED: Final = {THUMBNAIL_NAME: "w-200,h-200,c-at_max,f-webp,q-80"}

#: Bounds on what one URL may ask for.
MAX_STEPS: Final = 10
MAX_SIDE: Final = 8192
MAX_OUTPUT_PIXELS: Final = 40_000_000
MAX_TEXT: Final = 512

CROPS: Final = frozenset({"maintain_ratio", "force", "at_max", "at_max_enlarge", "at_least"})
CROP_MODES: Final = frozenset({"pad_resize", "extract", "pad_extract"})
#: Where ``fo-`` puts the kept region (or the image in its padding): fractions of the slack.
FOCUS: Final = {
    "center": (0.5, 0.5),
    "top": (0.5, 0.0),
    "bottom": (0.5, 1.0),
    "left": (0.0, 0.5),
    "right": (1.0, 0.5),
    "top_left": (0.0, 0.0),
    "top_right": (1.0, 0.0),
    "bottom_left": (0.0, 1.0),
    "bottom_right": (1.0, 1.0),
}
#: Output formats and their media types (``auto`` is decided by the request's ``Accept``).
FORMATS: Final = {
    "jpg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "avif": "image/avif",
    "gif": "image/gif",
}
_FORMAT_NAMES: Final = {"jpeg": "jpg", **{name: name for name in (*FORMATS, "auto")}}
#: Stored formats a browser shows, served in their own format when no ``f-`` is given; any
#: other is served as JPEG (PNG where it has transparency: decided by the renderer).
_KEPT_FORMATS: Final = {
    "jpg": "jpg",
    "jpeg": "jpg",
    "png": "png",
    "webp": "webp",
    "gif": "gif",
    "avif": "avif",
}
DEFAULT_QUALITY: Final = 80

_NUMBER: Final = re.compile(r"^(?:\d{1,6}(?:\.\d{1,6})?|\.\d{1,6})$")
_INTEGER: Final = re.compile(r"^-?\d{1,6}$")
_HEX: Final = re.compile(r"^(?:[0-9A-Fa-f]{6}|[0-9A-Fa-f]{8})$")
_BOOLEAN: Final = {"true": True, "false": False}


class TransformationError(ValueError):
    """A transformation this server refuses: ``unsupported`` (ImageKit has it, this server
    does not render it) or invalid (a value ImageKit would not take either)."""

    def __init__(self, message: str, *, unsupported: bool = False) -> None:
        super().__init__(message)
        self.unsupported = unsupported


@dataclass(frozen=True)
class Plan:
    """What to render: the steps (each a dict of checked parameters) and the encoding."""

    steps: tuple[dict[str, Any], ...]
    #: None: not asked (the stored format where browsers show it); ``auto``: by ``Accept``.
    format: str | None = None
    quality: int = DEFAULT_QUALITY
    progressive: bool = False
    lossless: bool = False
    #: ``orig-true``: the original file, untouched.
    original: bool = False

    def with_format(self, chosen: str) -> "Plan":
        return dataclasses.replace(self, format=chosen)

    def key(self) -> str:
        """A name for this rendering (its derived file), the same for the same output."""
        text = json.dumps(
            [list(self.steps), self.format, self.quality, self.progressive, self.lossless],
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(text.encode()).hexdigest()[:32] + "." + (self.format or "bin")

    def to_worker(self) -> dict[str, Any]:
        return {
            "steps": list(self.steps),
            "format": self.format,
            "quality": self.quality,
            "progressive": self.progressive,
            "lossless": self.lossless,
        }


def _shown(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def _invalid(parameter: str, why: str) -> TransformationError:
    return TransformationError(f"Invalid transformation parameter {_shown(parameter)}: {why}.")


def _unsupported(parameter: str) -> TransformationError:
    return TransformationError(
        f"The transformation parameter {_shown(parameter)} is not supported by this server.",
        unsupported=True,
    )


def _dimension(parameter: str, value: str) -> float:
    """A width or height: pixels (1 or more) or a fraction of the input (under 1)."""
    if not _NUMBER.match(value):
        if value[:1].isalpha():  # client hints (auto), arithmetic expressions (iw_div_2)
            raise _unsupported(parameter)
        raise _invalid(parameter, "a number is expected")
    number = float(value)
    if number <= 0:
        raise _invalid(parameter, "it must be more than 0")
    if number >= 1 and number != int(number):
        raise _invalid(parameter, "pixels are whole numbers")
    if number > MAX_SIDE:
        raise _invalid(parameter, f"at most {MAX_SIDE} pixels")
    return number


def _integer(parameter: str, value: str, low: int, high: int) -> int:
    if not _INTEGER.match(value):
        raise _invalid(parameter, "a whole number is expected")
    number = int(value)
    if not low <= number <= high:
        raise _invalid(parameter, f"from {low} to {high}")
    return number


def _step(text: str, named: Mapping[str, str], depth: int) -> list[dict[str, Any]]:
    """One step's parameters (a named transformation may expand to several steps)."""
    step: dict[str, Any] = {}
    expanded: list[dict[str, Any]] = []
    for parameter in text.split(","):
        if not parameter:
            continue
        if parameter == "e-grayscale":
            step["grayscale"] = True
            continue
        key, dash, value = parameter.partition("-")
        if not dash or not value:
            raise _invalid(parameter, "expected key-value")
        if key in ("w", "h"):
            step[key] = _dimension(parameter, value)
        elif key == "ar":
            parts = value.split("-")
            if len(parts) != 2 or not all(_NUMBER.match(p) and float(p) > 0 for p in parts):
                raise _invalid(parameter, "expected ar-<width>-<height>")
            step["ar"] = (float(parts[0]), float(parts[1]))
        elif key == "c":
            if value not in CROPS:
                raise _invalid(parameter, "not a crop strategy")
            step["c"] = value
        elif key == "cm":
            if value not in CROP_MODES:
                raise _invalid(parameter, "not a crop mode")
            step["cm"] = value
        elif key == "fo":
            if value not in FOCUS:
                raise _unsupported(parameter)  # auto, face, custom, objects
            step["fo"] = value
        elif key in ("x", "y", "xc", "yc"):
            step[key] = _integer(parameter, value, 0, MAX_SIDE * 4)
        elif key == "bg":
            if not _HEX.match(value):
                raise _unsupported(parameter)  # colour names, blurred backgrounds
            step["bg"] = value.upper()
        elif key == "dpr":
            if value == "auto" or not _NUMBER.match(value):
                raise (
                    _unsupported(parameter) if value == "auto" else _invalid(parameter, "a number")
                )
            ratio = float(value)
            if not 0.1 <= ratio <= 5:
                raise _invalid(parameter, "from 0.1 to 5")
            step["dpr"] = ratio
        elif key == "rt":
            if value == "auto":
                continue  # images are always shown upright (their EXIF orientation applied)
            degrees = _integer(parameter, value, -360, 360)
            if degrees % 90:
                raise _unsupported(parameter)
            step["rt"] = degrees % 360
        elif key == "bl":
            step["bl"] = _integer(parameter, value, 1, 100)
        elif key == "q":
            step["q"] = _integer(parameter, value, 1, 100)
        elif key == "f":
            if value not in _FORMAT_NAMES:
                raise _unsupported(parameter)
            step["f"] = _FORMAT_NAMES[value]
        elif key in ("pr", "lo", "orig"):
            if value not in _BOOLEAN:
                raise _invalid(parameter, "true or false")
            step[key] = _BOOLEAN[value]
        elif key == "n":
            expanded += _named(parameter, value, named, depth)
        else:
            raise _unsupported(parameter)
    if "ar" in step and "w" in step and "h" in step:
        del step["ar"]  # ImageKit: with both sides given, the aspect ratio is ignored
    return [*expanded, step] if step else expanded


def _named(parameter: str, name: str, named: Mapping[str, str], depth: int) -> list[dict[str, Any]]:
    text = named.get(name, BUILT_IN_NAMED.get(name))
    if text is None:
        raise _invalid(parameter, "no such named transformation")
    if depth > 0:
        raise _invalid(parameter, "a named transformation cannot name another")
    return [s for part in text.split(":") for s in _step(part, named, depth + 1)]


def parse(text: str, named: Mapping[str, str] | None = None) -> Plan:
    """The plan of a transformation string (``TransformationError`` when refused); ``named``:
    the operator's named transformations (``n-<name>``), besides ImageKit's thumbnail."""
    if len(text) > MAX_TEXT:
        raise TransformationError("The transformation is too long.")
    named = named or {}
    steps: list[dict[str, Any]] = []
    for part in text.split(":"):
        steps += _step(part, named, 0)
    output: dict[str, Any] = {}
    kept = []
    for step in steps:
        for key in ("f", "q", "pr", "lo", "orig"):
            if key in step:
                output[key] = step.pop(key)
        if step:
            kept.append(step)
    if len(kept) > MAX_STEPS:
        raise TransformationError(f"At most {MAX_STEPS} transformation steps.")
    return Plan(
        steps=tuple(kept),
        format=output.get("f"),
        quality=output.get("q", DEFAULT_QUALITY),
        progressive=output.get("pr", False),
        lossless=output.get("lo", False),
        original=output.get("orig", False),
    )


#: ImageKit's thumbnail, as a plan: what ``/files/tr:n-ik_ml_thumbnail/...`` renders.
THUMBNAIL: Final = parse("n-" + THUMBNAIL_NAME)


def output_format(
    plan_format: str | None, stored_extension: str, accept: str, *, avif: bool
) -> str | None:
    """The format to encode: the one asked; for ``auto``, the best the request's ``Accept``
    takes (AVIF when ``avif`` allows it, then WebP); for none, the stored one where browsers
    show it. None: the renderer picks JPEG, or PNG for an image with transparency."""
    kept = _KEPT_FORMATS.get(stored_extension.lower())
    if plan_format == "auto":
        if avif and "image/avif" in accept:
            return "avif"
        if "image/webp" in accept:
            return "webp"
        return None if kept == "avif" else kept
    return plan_format or kept


# -- geometry (pure: the worker executes these operations, tests check them without images) --
@dataclass(frozen=True)
class Operation:
    """``resize`` to (width, height); ``crop`` the box (left, top, right, bottom) — which may
    reach outside the image, the outside padded with ``background``."""

    kind: str
    box: tuple[int, int, int, int]
    background: str = "FFFFFF"


def _round(value: float) -> int:
    return max(1, int(value + 0.5))


def _side(value: float | None, whole: int, ratio: float) -> float | None:
    if value is None:
        return None
    return (value * whole if value < 1 else value) * ratio


def _place(slack: int, fraction: float) -> int:
    return int(slack * fraction + 0.5)


def operations(
    step: Mapping[str, Any], size: tuple[int, int]
) -> tuple[list[Operation], tuple[int, int]]:
    """What one step does to an image of ``size``: its operations and the size they give.
    ``TransformationError`` when the result would pass the bounds."""
    width, height = size
    ratio = step.get("dpr", 1.0)
    w = _side(step.get("w"), width, ratio)
    h = _side(step.get("h"), height, ratio)
    if "ar" in step:
        across, down = step["ar"]
        if w is not None and h is None:
            h = w * down / across
        elif h is not None and w is None:
            w = h * across / down
    ops: list[Operation] = []
    mode, crop = step.get("cm"), step.get("c", "maintain_ratio")
    fx, fy = FOCUS[step.get("fo", "center")]
    background = step.get("bg", "FFFFFF")
    if mode in ("extract", "pad_extract"):
        out_w = _round(w) if w is not None else width
        out_h = _round(h) if h is not None else height
        if mode == "extract":
            out_w, out_h = min(out_w, width), min(out_h, height)
        if "xc" in step or "yc" in step:
            left = step.get("xc", width // 2) - out_w // 2
            top = step.get("yc", height // 2) - out_h // 2
        else:
            left = step.get("x", _place(width - out_w, fx))
            top = step.get("y", _place(height - out_h, fy))
        if mode == "extract":
            left = min(max(0, left), width - out_w)
            top = min(max(0, top), height - out_h)
        ops.append(Operation("crop", (left, top, left + out_w, top + out_h), background))
        result = (out_w, out_h)
    elif w is None and h is None:
        result = size
    elif w is None or h is None:
        scale = w / width if w is not None else h / height  # type: ignore[operator]
        if crop == "at_max":
            scale = min(scale, 1.0)
        result = (_round(width * scale), _round(height * scale))
        if result != size:
            ops.append(Operation("resize", (0, 0, *result)))
    else:
        box_w, box_h = _round(w), _round(h)
        if mode == "pad_resize":
            scale = min(box_w / width, box_h / height)
            inner = (_round(width * scale), _round(height * scale))
            ops.append(Operation("resize", (0, 0, *inner)))
            left, top = _place(box_w - inner[0], fx), _place(box_h - inner[1], fy)
            ops.append(Operation("crop", (-left, -top, box_w - left, box_h - top), background))
            result = (box_w, box_h)
        elif crop == "force":
            ops.append(Operation("resize", (0, 0, box_w, box_h)))
            result = (box_w, box_h)
        elif crop in ("at_max", "at_max_enlarge", "at_least"):
            pick = max if crop == "at_least" else min
            scale = pick(box_w / width, box_h / height)
            if crop == "at_max":
                scale = min(scale, 1.0)
            result = (_round(width * scale), _round(height * scale))
            if result != size:
                ops.append(Operation("resize", (0, 0, *result)))
        else:  # maintain_ratio: cover the box, then crop it at the focus
            scale = max(box_w / width, box_h / height)
            cover = (max(box_w, _round(width * scale)), max(box_h, _round(height * scale)))
            if cover != size:
                ops.append(Operation("resize", (0, 0, *cover)))
            left, top = _place(cover[0] - box_w, fx), _place(cover[1] - box_h, fy)
            if (box_w, box_h) != cover:
                ops.append(Operation("crop", (left, top, left + box_w, top + box_h)))
            result = (box_w, box_h)
    if step.get("rt") in (90, 270):
        result = (result[1], result[0])
    if max(result) > MAX_SIDE or result[0] * result[1] > MAX_OUTPUT_PIXELS:
        raise TransformationError(
            f"The transformed image would be {result[0]} x {result[1]} pixels: at most "
            f"{MAX_SIDE} a side and {MAX_OUTPUT_PIXELS:,} in all."
        )
    return ops, result


def final_size(plan: Plan, size: tuple[int, int]) -> tuple[int, int]:
    """The size the plan gives an image of ``size`` (``TransformationError`` past the bounds)."""
    for step in plan.steps:
        _, size = operations(step, size)
    return size
