"""``JoinedWrites``: the small writes of one event-loop turn go out as one, nothing waits past
the turn, and closing writes what is held first. Against a recording transport in a real loop,
and against a real socket pair (what the client receives is byte for byte what was written)."""

import asyncio
import socket
from typing import Any

import pytest
import uvloop

from app.http_protocol import JoinedWrites

pytestmark = pytest.mark.anyio


class Recording:
    """A transport that records what reaches it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.buffered = 0

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def write_eof(self) -> None:
        self.writes.append(b"<eof>")

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def test_a_head_and_its_body_go_out_in_one_write() -> None:
    recording = Recording()
    joined = JoinedWrites(recording, asyncio.get_running_loop())  # type: ignore[arg-type]
    joined.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    assert recording.writes == []
    joined.write(b"{}")
    assert recording.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    await asyncio.sleep(0)  # the end-of-turn flush finds nothing to do
    assert len(recording.writes) == 1


async def test_a_lone_write_goes_out_at_the_end_of_the_turn() -> None:
    recording = Recording()
    joined = JoinedWrites(recording, asyncio.get_running_loop())  # type: ignore[arg-type]
    joined.write(b"head")
    assert joined.get_write_buffer_size() == 4  # held bytes count as buffered
    await asyncio.sleep(0)
    assert recording.writes == [b"head"]
    assert joined.get_write_buffer_size() == 0


async def test_close_and_eof_write_what_is_held_first() -> None:
    recording = Recording()
    joined = JoinedWrites(recording, asyncio.get_running_loop())  # type: ignore[arg-type]
    joined.write(b"431 answer")
    joined.close()
    assert recording.writes == [b"431 answer"]
    assert recording.closed
    other = Recording()
    joined = JoinedWrites(other, asyncio.get_running_loop())  # type: ignore[arg-type]
    joined.write(b"last")
    joined.write_eof()
    assert other.writes == [b"last", b"<eof>"]


async def test_large_writes_are_not_held_and_order_is_kept() -> None:
    recording = Recording()
    joined = JoinedWrites(recording, asyncio.get_running_loop())  # type: ignore[arg-type]
    big = b"x" * (64 * 1024)
    joined.write(big)
    assert recording.writes == [big]
    joined.write(b"a")
    joined.write(big)  # what is held goes first, with it
    joined.write(b"b")
    await asyncio.sleep(0)
    assert recording.writes == [big, b"a" + big, b"b"]
    assert joined.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest is the transport's
    assert not joined.is_closing()


def test_over_a_real_socket_the_peer_reads_every_byte_in_order() -> None:
    """Through uvloop's own transport: many writes over several turns, a close; the peer
    reads exactly the concatenation."""
    pieces = [bytes([i % 251]) * (i * 97 % 20_000 + 1) for i in range(200)]

    async def main() -> bytes:
        left, right = socket.socketpair()
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_connection(asyncio.Protocol, sock=left)
        joined = JoinedWrites(transport, loop)
        reader, writer = await asyncio.open_connection(sock=right)
        for number, piece in enumerate(pieces):
            joined.write(piece)
            if number % 3 == 0:
                await asyncio.sleep(0)
        joined.close()
        received = await reader.read()
        writer.close()
        return received

    assert uvloop.run(main()) == b"".join(pieces)
