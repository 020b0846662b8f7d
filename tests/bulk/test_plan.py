"""Planning a bulk upload: the mirrored tree, the policy applied before sending, the manifest."""

import json
import os
from pathlib import Path

from app.bulk.manifest import Manifest, sha256_of
from app.bulk.plan import walk
from app.core.imagekit.rules import MIB, PlanLimits

FREE = PlanLimits.for_plan("free")


def tree(root: Path) -> None:
    (root / "Holiday 2026" / "day.1").mkdir(parents=True)
    (root / "Holiday 2026" / "day.1" / "beach.jpg").write_bytes(b"\xff\xd8\xff" + b"x" * 10)
    (root / "notes.txt").write_text("hi")
    (root / "tool.exe").write_bytes(b"MZ")
    (root / "empty.png").write_bytes(b"")
    (root / "big.mp4").write_bytes(b"\x00" * (2 * MIB))


def test_walk_mirrors_the_tree_and_refuses_by_policy(tmp_path: Path) -> None:
    """Folders become remote folders in ImageKit's alphabet; bad types, empty and too-large
    files are refused with a reason and the rest is kept."""
    tree(tmp_path)
    limits = PlanLimits(max_size=1 * MIB, max_video_size=1 * MIB)
    wanted, refused = walk([tmp_path], "/backup", limits)
    assert sorted(f.key for f in wanted) == [
        "/backup/Holiday_2026/day_1/beach.jpg",
        "/backup/notes.txt",
    ]
    reasons = {r.path.name: r.reason for r in refused}
    assert reasons["tool.exe"].startswith("'.exe' is not an allowed upload type")
    assert reasons["empty.png"] == "the file is empty"
    assert reasons["big.mp4"] == "2 MiB is over the 1 MiB limit"


def test_walk_a_single_file_and_types(tmp_path: Path) -> None:
    """A file given directly goes to the folder itself; --types narrows the allowed set."""
    tree(tmp_path)
    wanted, _ = walk([tmp_path / "notes.txt"], "/", FREE)
    assert [f.key for f in wanted] == ["/notes.txt"]
    wanted, refused = walk([tmp_path], "/", FREE, frozenset({"jpg"}))
    assert [f.name for f in wanted] == ["beach.jpg"]
    assert {r.path.name: r.reason for r in refused}["notes.txt"] == "'.txt' is not among --types"


def test_manifest_resumes_and_notices_changes(tmp_path: Path) -> None:
    """A recorded file is done; a changed one is not; a torn last line is ignored."""
    tree(tmp_path)
    (wanted, _) = walk([tmp_path], "/", FREE)
    notes = next(f for f in wanted if f.name == "notes.txt")
    path = tmp_path / "manifest.jsonl"
    manifest = Manifest(path)
    manifest.record(notes, sha256_of(notes.path), {"fileId": "abc", "url": "http://x"})
    manifest.close()
    with path.open("a") as out:
        out.write('{"key": "/torn", "pa')
    again = Manifest(path)
    assert again.done(notes)
    assert not again.done(next(f for f in wanted if f.name == "beach.jpg"))
    assert json.loads(path.read_text().splitlines()[0])["file_id"] == "abc"
    notes.path.write_text("ho")  # same size, new content, new mtime
    os.utime(notes.path, ns=(notes.mtime_ns + 10**9, notes.mtime_ns + 10**9))
    (changed, _) = walk([tmp_path], "/", FREE)
    assert not again.done(next(f for f in changed if f.name == "notes.txt"))
    again.close()


def test_a_tree_deeper_than_imagekit_allows_refuses_its_files(tmp_path: Path) -> None:
    """A file 51 folders down (ImageKit nests 50) is refused with the reason; the walk goes
    on (it used to stop the whole dry run with a traceback)."""
    deep = tmp_path.joinpath(*(f"d{i}" for i in range(51)))
    deep.mkdir(parents=True)
    (deep / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "top.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    wanted, refused = walk([tmp_path], "/", FREE)
    assert [f.key for f in wanted] == ["/top.png"]
    assert [r.path for r in refused] == [deep / "a.png"]
    assert refused[0].reason == "folder may be at most 50 levels deep"
