"""FFmpeg's ffprobe run on its own, as a user runs it: the reference for what the upload API
reports of video and audio (``duration``, ``bitRate``, codecs, size in pixels)."""

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

FFPROBE = shutil.which("ffprobe")


def ffprobe(path: Path) -> dict[str, Any]:
    """ImageKit's media fields as ffprobe reports them (whole seconds, kbit/s, the first video
    and audio streams' codec names, cover art not taken for video); {} for a file it cannot
    read."""
    if FFPROBE is None:  # ./scripts/setup --test installs it (Debian's ffmpeg)
        pytest.fail("ffprobe is needed: apt-get install ffmpeg", pytrace=False)
    result = subprocess.run(
        [FFPROBE, "-v", "quiet", "-print_format", "json", "-show_format", "-show_streams", path],
        capture_output=True,
        check=False,
        timeout=60,
    )
    read = json.loads(result.stdout or b"{}")
    container = read.get("format", {})
    found: dict[str, Any] = {"seconds": float(container.get("duration", 0))}
    if found["seconds"] > 0:
        found["duration"] = max(1, round(found["seconds"]))
    if int(container.get("bit_rate", 0)):
        found["bitRate"] = round(int(container["bit_rate"]) / 1000)
    streams = read.get("streams", [])
    picture = next(  # cover art is a picture stream, not video
        (
            s
            for s in streams
            if s["codec_type"] == "video" and not s.get("disposition", {}).get("attached_pic")
        ),
        None,
    )
    sound = next((s for s in streams if s["codec_type"] == "audio"), None)
    if picture is not None:
        found["videoCodec"] = picture["codec_name"]
        if picture.get("width") and picture.get("height"):
            found["width"], found["height"] = picture["width"], picture["height"]
    if sound is not None:
        found["audioCodec"] = sound["codec_name"]
    return found
