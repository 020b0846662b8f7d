"""Random bytes for per-request values, fetched from the kernel 4 KiB at a time.

``os.urandom`` is one ``getrandom()`` system call per call, and every credential request wanted
two (the request id, and the v1 token or the v2 JWS nonce). Here one call serves 256 of them.
The bytes are the kernel's CSPRNG output all the same, and each 16-byte chunk goes to exactly
one caller (``deque.popleft`` is atomic, so threads cannot share one); a forked child drops the
chunks its parent fetched, so two processes never hand out the same bytes.

For values that must be unique and unguessable but are not secrets kept by the server (request
ids, single-use tokens and nonces that travel to the client). Keys and API keys come from
``secrets``.
"""

import os
from collections import deque
from typing import Final

CHUNK: Final = 16
_BATCH: Final = 256
_chunks: deque[bytes] = deque()


def random16() -> bytes:
    """16 random bytes, never handed out before."""
    try:
        return _chunks.popleft()
    except IndexError:
        block = os.urandom(CHUNK * _BATCH)
        _chunks.extend(block[i : i + CHUNK] for i in range(CHUNK, len(block), CHUNK))
        return block[:CHUNK]


os.register_at_fork(after_in_child=_chunks.clear)
