"""Real files of every kind the upload API reads, made at test time by real encoders (Pillow,
pillow-heif, PyAV/FFmpeg): a camera-like JPEG with EXIF, GPS, IPTC and XMP, TIFF, HEIC, PSD,
SVG, EPS, MP4 with H.264 video and AAC audio, MP3, PDF. Used by the tests and by
``bench.uploads``."""

import io
import math
import struct
from fractions import Fraction
from pathlib import Path
from typing import Any

CAMERA = {"Make": "Canon", "Model": "Canon EOS R5", "Taken": "2026:05:17 09:41:07"}
KEYWORDS = ["harbour", "morning"]
XMP_CREATOR = "Ada Lovelace"


def _picture(width: int, height: int, mode: str = "RGB") -> "object":
    from PIL import Image

    picture = Image.new(mode, (width, height))
    for x in range(width):  # a gradient, so encoders have something to encode
        for y in range(0, height, max(1, height // 8)):
            shade = (x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), 128)
            picture.putpixel((x, y), shade + ((200,) if mode == "RGBA" else ()))
    return picture


def _camera_exif() -> "object":
    from PIL import Image
    from PIL.ExifTags import IFD
    from PIL.TiffImagePlugin import IFDRational

    exif = Image.Exif()
    exif[0x010F] = CAMERA["Make"]
    exif[0x0110] = CAMERA["Model"]
    exif[0x0112] = 6  # Orientation: rotated 90° clockwise
    exif[0x011A] = IFDRational(300, 1)
    exif[0x011B] = IFDRational(300, 1)
    exif[0x0128] = 2
    exif[0x0132] = CAMERA["Taken"]
    details = exif.get_ifd(IFD.Exif)
    details[0x829A] = IFDRational(1, 250)  # ExposureTime
    details[0x829D] = IFDRational(28, 10)  # FNumber
    details[0x8827] = 400  # ISO
    details[0x9000] = b"0232"
    details[0x9003] = CAMERA["Taken"]
    details[0x9004] = CAMERA["Taken"]
    details[0x920A] = IFDRational(50, 1)  # FocalLength
    details[0xA301] = b"\x01"  # SceneType
    gps = exif.get_ifd(IFD.GPSInfo)
    gps[0] = b"\x02\x02\x00\x00"
    gps[1] = "N"
    gps[2] = (IFDRational(48, 1), IFDRational(51, 1), IFDRational(2976, 100))
    gps[3] = "E"
    gps[4] = (IFDRational(2, 1), IFDRational(17, 1), IFDRational(4020, 100))
    return exif


def _iptc_segment() -> bytes:
    """An APP13 (Photoshop) segment holding IPTC keywords and a by-line, as cameras and
    Lightroom write it."""
    records = b""
    for dataset, value in [(25, k) for k in KEYWORDS] + [(80, "Grace Hopper")]:
        data = value.encode()
        records += b"\x1c\x02" + bytes([dataset]) + struct.pack(">H", len(data)) + data
    resource = b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00" + struct.pack(">I", len(records))
    resource += records + (b"\x00" if len(records) % 2 else b"")
    payload = b"Photoshop 3.0\x00" + resource
    return b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload


def _xmp_packet() -> bytes:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="4">'
        f"<dc:creator><rdf:Seq><rdf:li>{XMP_CREATOR}</rdf:li></rdf:Seq></dc:creator>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode()


def camera_jpeg(width: int = 640, height: int = 480) -> bytes:
    """A JPEG as a camera writes it: EXIF (make, model, exposure, GPS), IPTC, XMP, quality 90."""
    out = io.BytesIO()
    _picture(width, height).save(  # type: ignore[attr-defined]
        out, "JPEG", quality=90, exif=_camera_exif(), xmp=_xmp_packet()
    )
    data = out.getvalue()
    return data[:2] + _iptc_segment() + data[2:]


def photo(size: int) -> bytes:
    """A camera JPEG (EXIF, IPTC, XMP) of about ``size`` bytes: its pixels are noise, so its
    size follows its dimensions as a photo's does (the upload benchmarks' images)."""
    from PIL import Image

    width = 64
    while True:
        height = width * 3 // 4
        noise = Image.effect_noise((width, height), 60).convert("RGB")
        out = io.BytesIO()
        noise.save(out, "JPEG", quality=75, exif=_camera_exif(), xmp=_xmp_packet())
        data = out.getvalue()
        data = data[:2] + _iptc_segment() + data[2:]
        if len(data) >= size * 0.95:
            return data
        width = max(width + 8, int(width * min(1.5, (size / len(data)) ** 0.5)))


def image(extension: str, width: int = 64, height: int = 48, *, camera: bool = False) -> bytes:
    """An image in the format Pillow (or pillow-heif) writes for ``extension``; with
    ``camera``, the camera's EXIF too (as a phone writes a HEIC)."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    formats = {"jpg": "JPEG", "png": "PNG", "gif": "GIF", "webp": "WEBP", "bmp": "BMP"}
    formats |= {"avif": "AVIF"}
    formats |= {"tiff": "TIFF", "heic": "HEIF", "pdf": "PDF"}
    out = io.BytesIO()
    mode = "RGBA" if extension in ("png", "webp", "avif") else "RGB"
    extra = {"exif": _camera_exif()} if camera else {}
    _picture(width, height, mode).save(out, formats[extension], **extra)  # type: ignore[attr-defined]
    return out.getvalue()


def psd(width: int = 40, height: int = 30) -> bytes:
    """A Photoshop document (RGB, 8 bits, raw image data), as the PSD specification lays it
    out; Pillow reads PSD but does not write it."""
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, height, width, 8, 3)
    sections = struct.pack(">III", 0, 0, 0)  # colour mode data, image resources, layers
    pixels = bytes(range(256)) * (3 * width * height // 256 + 1)
    return header + sections + struct.pack(">H", 0) + pixels[: 3 * width * height]


def dng(preview: tuple[int, int] = (16, 12), full: tuple[int, int] = (4000, 3000)) -> bytes:
    """A camera raw laid out as DNG (and ARW) lay it out: a small preview in the first TIFF
    directory, the full sensor image in a sub-directory (tag SubIFDs). Written by hand: no
    library here writes raw files; only the layout matters to the reader."""

    def directory(entries: list[tuple[int, int, int]]) -> bytes:
        out = struct.pack("<H", len(entries))
        for tag, kind, value in sorted(entries):
            # a SHORT value is left-justified in the entry's 4 bytes
            packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
            out += struct.pack("<HHI", tag, kind, 1) + packed
        return out + struct.pack("<I", 0)

    short, long_ = 3, 4
    width, height = preview
    pixels = width * height
    first_at = 8
    first_size = 2 + 10 * 12 + 4
    sub_at = first_at + first_size
    sub_size = 2 + 7 * 12 + 4
    data_at = sub_at + sub_size
    first = directory(
        [
            (256, short, width),
            (257, short, height),
            (258, short, 8),
            (259, short, 1),
            (262, short, 1),
            (273, long_, data_at),
            (277, short, 1),
            (278, short, height),
            (279, long_, pixels),
            (330, long_, sub_at),
        ]
    )
    sub = directory(
        [
            (254, long_, 0),
            (256, long_, full[0]),
            (257, long_, full[1]),
            (258, short, 16),
            (259, short, 1),
            (262, short, 32803),
            (277, short, 1),
        ]
    )
    return b"II*\x00" + struct.pack("<I", first_at) + first + sub + bytes(pixels)


def svg(width: str = "120", height: str = "80", view_box: str | None = None) -> bytes:
    box = f' viewBox="{view_box}"' if view_box else ""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"{box}>'
        '<rect width="10" height="10"/></svg>'
    ).encode()


def eps(width: int = 120, height: int = 80) -> bytes:
    return (
        "%!PS-Adobe-3.0 EPSF-3.0\n"
        f"%%BoundingBox: 0 0 {width} {height}\n"
        "%%EndComments\n0 0 moveto 10 10 lineto stroke\nshowpage\n%%EOF\n"
    ).encode()


def mp4(seconds: int = 2, width: int = 320, height: int = 240, *, muxer: str = "mp4") -> bytes:
    """An MP4 (or, with ``muxer="mov"``, a QuickTime movie) with H.264 video and AAC audio,
    ``seconds`` long."""
    import av

    out = io.BytesIO()
    with av.open(out, "w", format=muxer) as container:
        video = _picture_stream(container, "libx264", width, height)
        audio = container.add_stream("aac", rate=44100)
        _encode_pictures(container, video, seconds)
        _encode_tone(container, audio, seconds, "fltp")
    return out.getvalue()


def _picture_stream(container: Any, codec: str, width: int, height: int) -> Any:
    """A video stream of 25 frames a second by FFmpeg's ``codec``."""
    video = container.add_stream(codec, rate=25)
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    return video


def _encode_pictures(container: Any, video: Any, seconds: int) -> None:
    """``seconds`` of frames into ``video``, each a flat colour."""
    import av
    from PIL import Image

    for index in range(seconds * 25):
        picture = Image.new("RGB", (video.width, video.height), (index * 5 % 256, 80, 160))
        frame = av.VideoFrame.from_image(picture)  # type: ignore[no-untyped-call]
        frame.pts = index
        container.mux(video.encode(frame))
    container.mux(video.encode(None))


def classic_quicktime(seconds: int = 2) -> bytes:
    """A QuickTime movie as written before ``ftyp`` boxes existed: its first atom a ``free``
    one (the ``ftyp`` box renamed, so that every offset in the file stays right)."""
    data = mp4(seconds, 160, 120, muxer="mov")
    assert data[4:8] == b"ftyp"
    return data[:4] + b"free" + data[8:]


def mp3(seconds: int = 2) -> bytes:
    import av

    out = io.BytesIO()
    with av.open(out, "w", format="mp3") as container:
        audio = container.add_stream("libmp3lame", rate=44100)
        _encode_tone(container, audio, seconds, "s16p")
    return out.getvalue()


def _encode_tone(container: object, stream: object, seconds: int, sample_format: str) -> None:
    """A 440 Hz tone, ``seconds`` long, in frames of the encoder's size."""
    import av

    rate = 44100
    size = getattr(stream, "codec_context").frame_size or 1152  # noqa: B009
    total = seconds * rate
    for start in range(0, total, size):
        count = min(size, total - start)
        frame = av.AudioFrame(format=sample_format, layout="mono", samples=count)
        if sample_format == "fltp":
            samples = [0.3 * math.sin(2 * math.pi * 440 * (start + i) / rate) for i in range(count)]
            data = struct.pack(f"<{count}f", *samples)
        else:
            samples16 = [
                int(9000 * math.sin(2 * math.pi * 440 * (start + i) / rate)) for i in range(count)
            ]
            data = struct.pack(f"<{count}h", *samples16)
        frame.planes[0].update(data)
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        container.mux(stream.encode(frame))  # type: ignore[attr-defined]
    container.mux(stream.encode(None))  # type: ignore[attr-defined]


def pdf() -> bytes:
    return image("pdf")


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


#: name, bytes, and what the response must say about the file.
REAL_FILES: list[tuple[str, bytes, dict[str, object]]] = [
    ("camera.jpg", camera_jpeg(640, 480), {"width": 640, "height": 480}),
    ("scan.tiff", image("tiff", 90, 60), {"width": 90, "height": 60}),
    ("phone.heic", image("heic", 72, 54, camera=True), {"width": 72, "height": 54}),
    ("layers.psd", psd(40, 30), {"width": 40, "height": 30}),
    ("raw.dng", dng((16, 12), (4000, 3000)), {"width": 4000, "height": 3000}),
    ("sony.arw", dng((20, 15), (6000, 4000)), {"width": 6000, "height": 4000}),
    ("logo.svg", svg("120", "80"), {"width": 120, "height": 80}),
    ("print.eps", eps(150, 90), {"width": 150, "height": 90}),
    ("anim.gif", image("gif", 33, 21), {"width": 33, "height": 21}),
    ("photo.webp", image("webp", 50, 20), {"width": 50, "height": 20}),
    ("old.bmp", image("bmp", 17, 9), {"width": 17, "height": 9}),
    ("icon.png", image("png", 31, 7), {"width": 31, "height": 7}),
    ("photo.avif", image("avif", 48, 36), {"width": 48, "height": 36}),
    (
        "clip.mp4",
        mp4(seconds=2, width=320, height=240),
        {"width": 320, "height": 240, "duration": 2, "videoCodec": "h264", "audioCodec": "aac"},
    ),
    (
        "old.mov",
        classic_quicktime(2),
        {"width": 160, "height": 120, "duration": 2, "videoCodec": "h264"},
    ),
    ("song.mp3", mp3(seconds=3), {"duration": 3, "audioCodec": "mp3"}),
    ("report.pdf", pdf(), {}),
]


def sound(muxer: str, codec: str, sample_format: str, seconds: int = 1) -> bytes:
    """A tone in ``muxer``'s container by FFmpeg's ``codec`` (WAV's PCM, M4A's AAC...)."""
    import av

    out = io.BytesIO()
    with av.open(out, "w", format=muxer) as container:
        audio = container.add_stream(codec, rate=44100)
        _encode_tone(container, audio, seconds, sample_format)
    return out.getvalue()


def webm(seconds: int = 1, width: int = 64, height: int = 48) -> bytes:
    """A WebM with VP9 video, as FFmpeg's libvpx writes it."""
    import av

    out = io.BytesIO()
    with av.open(out, "w", format="webm") as container:
        video = _picture_stream(container, "libvpx-vp9", width, height)
        _encode_pictures(container, video, seconds)
    return out.getvalue()
