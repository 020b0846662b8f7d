"""Media files made by others, from the test data four PyPI projects ship in their source
packages (piexif, pillow-heif, mutagen, and the file-type detector puremagic's samples of
images, office documents, audio, video and text): fetched by pinned URL, checked against their
SHA-256 and kept in ``.tools/corpus``. The tests need PyPI, as ``./scripts/setup`` does."""

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import httpx

from app.core.imagekit.filetypes import ALLOWED, extension_of

CACHE = Path(__file__).parents[2] / ".tools" / "corpus"
PYPI = "https://files.pythonhosted.org/packages/"

#: name: (URL under PyPI's files, SHA-256, the folder inside that holds the media files)
SOURCES = {
    "piexif-1.1.3.zip": (
        "fa/84/a3f25cec7d0922bf60be8000c9739d28d24b6896717f44cc4cfb843b1487/piexif-1.1.3.zip",
        "83cb35c606bf3a1ea1a8f0a25cb42cf17e24353fd82e87ae3884e74a302a5f1b",
        "piexif-1.1.3/tests/images/",
    ),
    "pillow_heif-1.9.0.tar.gz": (
        "46/b8/bef426073bdb089d30e053bcc6b2800d2be756ff2cf93eea34fa68bc92f0/"
        "pillow_heif-1.9.0.tar.gz",
        "8a13d15106c9dbbd66a65966edee2ee0de3950c18dc3ea42912442cda803ea4c",
        "pillow_heif-1.9.0/tests/images/",
    ),
    "mutagen-1.48.1.tar.gz": (
        "df/70/1675da133ea92227da41bf5b24e1c66be597ff736a1533ade41da986852f/mutagen-1.48.1.tar.gz",
        "8f95637ab9f6f305cec6bd1294e197debe207998e3e068596563c74f86b0a173",
        "mutagen-1.48.1/tests/data/",
    ),
    "puremagic-2.2.0.tar.gz": (
        "24/74/ce5987ab9b8aec4ced06e2723ebb604205c9eb58abdad91453da93166380/puremagic-2.2.0.tar.gz",
        "eb4bddf07c177c4b434554b92165b67449f5a51e152b976202d6254498810eef",
        "puremagic-2.2.0/test/resources/",
    ),
}


def _package(name: str) -> bytes:
    """The package's bytes: kept in ``CACHE`` once fetched, checked against the pin."""
    url, digest, _ = SOURCES[name]
    kept = CACHE / name
    if kept.exists():
        data = kept.read_bytes()
        if hashlib.sha256(data).hexdigest() == digest:
            return data
    data = httpx.get(PYPI + url, timeout=60, follow_redirects=True).raise_for_status().content
    assert hashlib.sha256(data).hexdigest() == digest, f"{name} is not the pinned package"
    CACHE.mkdir(parents=True, exist_ok=True)
    kept.write_bytes(data)
    return data


def corpus() -> dict[str, bytes]:
    """Every file of the packages' test data whose extension the upload API accepts."""
    files: dict[str, bytes] = {}
    for name, (_, _, folder) in SOURCES.items():
        data = _package(name)
        if name.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                members = {n: archive.read(n) for n in archive.namelist()}
        else:
            with tarfile.open(fileobj=io.BytesIO(data)) as archive:
                members = {
                    m.name: archive.extractfile(m).read()  # type: ignore[union-attr]
                    for m in archive.getmembers()
                    if m.isfile()
                }
        for path, content in members.items():
            # unique across folders: "heif_other-nokia-alpha.heic"
            base = path.removeprefix(folder).replace("/", "-")
            if path.startswith(folder) and (extension_of(base) or "") in ALLOWED:
                files[base] = content
    return files
