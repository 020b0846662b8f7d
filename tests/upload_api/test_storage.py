"""Local storage: names cleaned as ImageKit does, files published atomically, overwrite rules."""

import os
from pathlib import Path

import orjson
import pytest

from app.core.imagekit.rules import clean_name
from app.upload_api.storage import FileDetails, LocalStorage, NameTaken, unique_name
from app.upload_api.storage.records import decode, encode, next_record


def details(size: int = 3) -> FileDetails:
    return FileDetails(size=size, mime="text/plain", extension="txt")


def upload(storage: LocalStorage, data: bytes) -> Path:
    path = storage.spool.tmp / f"upload-{len(storage.leftovers())}.part"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "cleaned"),
    [
        ("cat.png", "cat.png"),
        ("my cat (1).png", "my_cat__1_.png"),
        ("Kätzchen-ü.png", "Kätzchen-ü.png"),
        ("../../etc/passwd", "___.._etc_passwd"),
        (".htaccess", "_htaccess"),
        ("a" * 300 + ".png", "a" * 196 + ".png"),
    ],
)
def test_clean_name(name: str, cleaned: str) -> None:
    """Letters, digits, '.', '-' stay; anything else becomes '_'; never hidden or too long."""
    assert clean_name(name) == cleaned


def test_unique_name_shape() -> None:
    """Unique names get ImageKit's 9-character suffix before the extension."""
    name = unique_name("cat.png")
    assert name.startswith("cat_")
    assert name.endswith(".png")
    assert len(name) == len("cat_.png") + 9


def test_commit_publishes_and_cleans_up(tmp_path: Path) -> None:
    """A committed file is at its path with its metadata; nothing stays in tmp/."""
    storage = LocalStorage(tmp_path)
    stored = storage.publish(
        upload(storage, b"abc"),
        folder="/a/b",
        name="x.txt",
        unique=False,
        overwrite=False,
        details=details(),
    )
    assert stored.file_path == "/a/b/x.txt"
    assert storage.content(stored).read_bytes() == b"abc"
    assert storage.record("/a/b/x.txt") == stored
    assert storage.leftovers() == []


def test_no_overwrite_means_no_overwrite(tmp_path: Path) -> None:
    """With overwrite and unique names off, an existing file is kept with its record and the
    upload refused; the refused upload's staged record goes with it."""
    storage = LocalStorage(tmp_path)
    kept = storage.publish(
        upload(storage, b"one"),
        folder="/",
        name="x.txt",
        unique=False,
        overwrite=False,
        details=details(),
    )
    with pytest.raises(NameTaken):
        storage.publish(
            upload(storage, b"two"),
            folder="/",
            name="x.txt",
            unique=False,
            overwrite=False,
            details=details(),
        )
    assert (tmp_path / "files" / "x.txt").read_bytes() == b"one"
    assert LocalStorage(tmp_path).record("/x.txt") == kept
    assert storage.leftovers() == []
    assert len(list((tmp_path / "meta").iterdir())) == 1


def test_overwrite_keeps_the_id_and_bumps_the_version(tmp_path: Path) -> None:
    """Overwriting replaces the bytes, keeps fileId, and records version 2 in place of the
    first record; nothing stays in tmp/."""
    storage = LocalStorage(tmp_path)
    first = storage.publish(
        upload(storage, b"one"),
        folder="/",
        name="x.txt",
        unique=False,
        overwrite=True,
        details=details(),
    )
    second = storage.publish(
        upload(storage, b"two"),
        folder="/",
        name="x.txt",
        unique=False,
        overwrite=True,
        details=details(),
    )
    assert (second.file_id, second.version) == (first.file_id, 2)
    assert second.version_id != first.version_id
    assert storage.content(second).read_bytes() == b"two"
    assert LocalStorage(tmp_path).record("/x.txt") == second
    assert storage.leftovers() == []


def test_spool_names_skip_what_an_earlier_process_left(tmp_path: Path) -> None:
    """Spool files are named by a counter; a name left by an earlier process with the same
    id is skipped, never opened."""
    storage = LocalStorage(tmp_path)
    left = storage.spool.work / f"upload-{os.getpid()}-0"
    left.write_bytes(b"left")
    fd, path = storage.new_temp()
    os.close(fd)
    assert path != left
    assert left.read_bytes() == b"left"


def test_unique_names_never_collide(tmp_path: Path) -> None:
    """Fifty uploads of one name give fifty files."""
    storage = LocalStorage(tmp_path)
    paths = {
        storage.publish(
            upload(storage, b"x"),
            folder="/",
            name="x.txt",
            unique=True,
            overwrite=False,
            details=details(1),
        ).file_path
        for _ in range(50)
    }
    assert len(paths) == 50


def test_a_record_with_fields_this_version_does_not_know_is_read() -> None:
    """A newer replica's record (a field added since) is read by this one during a rolling
    update, the unknown field left out; what is not a record is still None."""
    stored = next_record(
        None, "/a.txt", "a.txt", FileDetails(size=1, mime="text/plain", extension="txt")
    )
    newer = orjson.loads(encode(stored)) | {"added_later": {"x": 1}}
    assert decode(orjson.dumps(newer)) == stored
    assert decode(b"[1, 2]") is None
    assert decode(b'{"size": 1}') is None
    assert decode(b"not json") is None
