"""Small, valid sample files built in code (no binary fixtures in the repository)."""

import hashlib
import hmac
import struct
import zlib


def png(width: int = 3, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"".join(b"\x00" + b"\x10\x20\x30" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def jpeg(width: int = 5, height: int = 4) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


def v1_signature(private_key: str | bytes, token: str, expire: int) -> str:
    """ImageKit's v1 signature computed with ``hmac``, as the official SDKs compute it: the
    reference the service's own signing is tested against."""
    key = private_key.encode() if isinstance(private_key, str) else private_key
    return hmac.new(key, f"{token}{expire}".encode(), hashlib.sha1).hexdigest()
