"""Pooled random bytes: 16 at a time, never the same twice, not even across a fork."""

import os

from app.core.entropy import CHUNK, random16


def test_chunks_are_never_handed_out_twice() -> None:
    """Ten thousand chunks (dozens of refills): all 16 bytes long, all different."""
    chunks = [random16() for _ in range(10_000)]
    assert {len(c) for c in chunks} == {CHUNK}
    assert len(set(chunks)) == len(chunks)


def test_a_forked_child_does_not_repeat_its_parent() -> None:
    """After a fork the child fetches its own bytes: what it hands out next is not what the
    parent hands out next (a shared pool would make the two equal)."""
    random16()  # the pool now holds bytes the child would inherit
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.write(write, random16())
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    child = os.read(read, CHUNK)
    os.close(read)
    assert status == 0
    assert len(child) == CHUNK
    assert child != random16()
