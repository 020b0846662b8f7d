"""ExifTool run on its own, as a user runs it: the reference the upload API's readings
(``app.upload_api.exiftool``) are compared with."""

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

EXIFTOOL = shutil.which("exiftool")


def _read(*arguments: str) -> Any:
    """ExifTool's JSON answer (``-list`` first: every tag table loaded, as a long-running
    ExifTool has them). A file read with errors exits 1 and is still read."""
    if EXIFTOOL is None:  # ./scripts/setup --test installs it (Debian's libimage-exiftool-perl)
        pytest.fail("exiftool is needed: apt-get install libimage-exiftool-perl", pytrace=False)
    result = subprocess.run(
        [EXIFTOOL, "-list", "-execute", *arguments],
        capture_output=True,
        check=False,
        timeout=180,
    )
    return json.loads(result.stdout[result.stdout.index(b"\n[{") :])


def exiftool_each(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """Every tag of these files, read at once: JSON, numeric values; without the System group
    (paths and times of the server's copy) and its version; binary blobs left out. By file
    name."""
    found = _read(
        "-j", "-n", "-x", "System:all", "-x", "ExifTool:all", *(str(path) for path in paths)
    )
    return {
        Path(tags.pop("SourceFile")).name: {
            k: v for k, v in tags.items() if not str(v).startswith("(Binary data ")
        }
        for tags in found
    }


def exiftool_alone(path: Path) -> dict[str, Any]:
    """Every tag of one file (``exiftool_each``)."""
    return exiftool_each([path])[path.name]


def exiftool_grouped(path: Path) -> dict[str, Any]:
    """The EXIF and maker-note tags of one file, by group (``EXIF:IFD0:Make``)."""
    [tags] = _read("-j", "-n", "-G0:1", "-EXIF:all", "-MakerNotes:all", str(path))
    del tags["SourceFile"]
    return dict(tags)


#: Where a file states its resolution, as ExifTool names it: (group, tag, unit tag, pixels per
#: inch for each unit value).
_RESOLUTIONS: tuple[tuple[str, str, str | None, dict[int | None, float]], ...] = (
    ("JFIF", "XResolution", "ResolutionUnit", {1: 1.0, 2: 2.54}),
    ("IFD0", "XResolution", "ResolutionUnit", {2: 1.0, 3: 2.54, None: 1.0}),
    ("PNG-pHYs", "PixelsPerUnitX", "PixelUnits", {1: 0.0254}),
    ("Photoshop", "XResolution", None, {None: 1.0}),
    ("File", "PixelsPerMeterX", None, {None: 0.0254}),  # a BMP's header
)


def stated_densities(paths: list[Path]) -> dict[str, set[int]]:
    """The resolutions (pixels per inch) each file states, in any of the places ExifTool reads
    one from (JFIF, EXIF, PNG, Photoshop, BMP); an empty set where it states none. By name."""
    found = _read("-j", "-n", "-G1", "-a", *(str(path) for path in paths))
    stated: dict[str, set[int]] = {}
    for tags in found:
        densities = stated.setdefault(Path(tags["SourceFile"]).name, set())
        for group, tag, unit_tag, per_inch in _RESOLUTIONS:
            value = tags.get(f"{group}:{tag}")
            unit = tags.get(f"{group}:{unit_tag}") if unit_tag else None
            if isinstance(value, int | float) and value > 0 and unit in per_inch:
                densities.add(round(value * per_inch[unit]))
    return stated
