"""Admission: bytes of uploads whose credential is not yet checked, bounded per process.

The credential comes with the form, after or before the file, so an upload streams to disk before
anyone knows who sent it. ``InFlight`` caps those bytes, all anonymous clients together: past the
cap the upload is refused with 503 and ``Retry-After``.
"""

from collections.abc import AsyncIterator

from app.upload_api import messages


class InFlight:
    """Bytes of uploads in flight in this process whose credential is not yet checked (it
    comes with the form, after or before the file), bounded: an anonymous client can make the
    process write at most this much to disk at once, all anonymous clients together."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def meter(self, chunks: AsyncIterator[bytes]) -> "_Metered":
        return _Metered(self, chunks)


class _Metered:
    """A body whose bytes count against ``InFlight`` until ``release``."""

    def __init__(self, budget: InFlight, chunks: AsyncIterator[bytes]) -> None:
        self.budget = budget
        self.chunks = chunks
        self.charged = 0

    def __aiter__(self) -> "_Metered":
        return self

    async def __anext__(self) -> bytes:
        chunk = await anext(self.chunks)
        budget = self.budget
        if budget.used + len(chunk) > budget.limit:
            raise messages.busy()
        budget.used += len(chunk)
        self.charged += len(chunk)
        return chunk

    def release(self) -> None:
        self.budget.used -= self.charged
        self.charged = 0
