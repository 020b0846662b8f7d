"""What reading a file's metadata costs, per kind of file (#30): the media worker's own reading
(Pillow, PyAV, defusedxml) and ExifTool's (``embeddedMetadata`` and ``metadata.exif``: one
``-stay_open`` process, as each worker keeps it), side by side on the same files.

    python -m bench.metadata [--repeat 20]

The files are the tests' real ones (``tests.support.media_files.REAL_FILES``: a camera JPEG with
EXIF, GPS, IPTC and XMP; TIFF, HEIC, PSD, camera raw, SVG, EPS, GIF, WebP, BMP, PNG, AVIF, MP4,
a classic QuickTime movie, MP3, PDF). Wall-clock milliseconds per file (ExifTool works in its
own process), median of ``--repeat`` after one warm-up read, and the number of tags each gives.
"""

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.core.imagekit.filetypes import ALLOWED
from app.upload_api import exiftool, media
from tests.support.media_files import REAL_FILES


def _timed(read: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    found = read()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        read()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print("| file | own reading ms | own tags | ExifTool ms | ExifTool tags |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, data, _ in REAL_FILES:
            path = Path(tmp) / name
            path.write_bytes(data)
            file_type = ALLOWED[name.rpartition(".")[2]]
            kind, extension = file_type.kind.value, file_type.extension

            def own(path: Path = path, kind: str = kind, extension: str = extension) -> Any:
                return media.probe(str(path), extension, kind, embedded=False)

            def by_exiftool(path: Path = path, extension: str = extension) -> Any:
                return exiftool.read(str(path), extension)

            own_ms, own_found = _timed(own, args.repeat)
            tool_ms, tool_found = _timed(by_exiftool, args.repeat)
            print(
                f"| {name} ({len(data) // 1024} KB) | {own_ms:.1f} "
                f"| {len((own_found or {}).get('embeddedMetadata') or {})} "
                f"| {tool_ms:.1f} | {len(tool_found.embedded) if tool_found else 0} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
