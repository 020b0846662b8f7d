"""The renderer's resize, Pillow alone against Pillow with libvips (#32): the reason
``app/upload_api/render.py`` hands a first reduction to libvips.

    python -m bench.render [--repeat 10]

For each source (the delivery benchmark's photos, 2 and 12 megapixels) and each width asked, the
renderer runs in this process (one thread, as in a media worker), with libvips and with its
libvips path turned off. Printed: CPU milliseconds per render to a JPEG at quality 80 (median of
``--repeat``), and how close each picture is to Pillow's Lanczos of the full image (PSNR, dB,
of a lossless PNG render; JPEG's draft scaling is what both lose).
"""

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops, ImageOps, ImageStat

from app.core.imagekit.transformations import parse
from app.upload_api import render
from bench.delivery import SOURCES, sources_in

#: Widths asked of each source: below, at and above JPEG's scales (1/8, 1/4, 1/2, 1).
WIDTHS = {
    "photo-2mp.jpg": (150, 310, 390, 420, 600, 790, 810, 1200, 1500),
    "photo-12mp.jpg": (300, 480, 510, 800, 1010, 1500, 2010, 3000),
}


def _psnr(one: Image.Image, other: Image.Image) -> float:
    stats = ImageStat.Stat(ImageChops.difference(one, other))
    mse = sum(stats.sum2) / (one.width * one.height * len(stats.sum2))
    return 10 * math.log10(255**2 / mse) if mse else math.inf


def _timed(path: Path, width: int, folder: Path, repeat: int) -> tuple[float, Image.Image]:
    """CPU ms per render to JPEG, and the picture rendered losslessly."""
    plan = parse(f"w-{width},q-80").with_format("jpg").to_worker()
    times = []
    for _ in range(repeat + 1):  # the first one warms the caches, and is not counted
        start = time.process_time()
        assert render.render(str(path), str(folder / "out.jpg"), plan, "image") == "made"
        times.append(time.process_time() - start)
    lossless = parse(f"w-{width}").with_format("png").to_worker()
    assert render.render(str(path), str(folder / "out.png"), lossless, "image") == "made"
    with Image.open(folder / "out.png") as made:
        made.load()
        return statistics.median(times[1:]) * 1000, made


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    render.vips()  # as a media worker sets it up: one thread, no cache
    with_vips = render._vips_resized

    def without_vips(*_: Any) -> None:
        return None

    print(
        "| source | width | Pillow alone ms | renderer ms | ratio | Pillow alone dB | renderer dB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sources_in(folder)
        for name in SOURCES:
            path = folder / name
            with Image.open(path) as opened:
                full = ImageOps.exif_transpose(opened).convert("RGB")
            for width in WIDTHS[name]:
                render._vips_resized = without_vips  # type: ignore[assignment]
                alone, pillow = _timed(path, width, folder, args.repeat)
                render._vips_resized = with_vips
                both, hybrid = _timed(path, width, folder, args.repeat)
                truth = full.resize(pillow.size, Image.Resampling.LANCZOS)
                print(
                    f"| {name} | {width} | {alone:.1f} | {both:.1f} | {alone / both:.2f}x"
                    f" | {_psnr(pillow, truth):.1f} | {_psnr(hybrid, truth):.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
