"""Local storage: names cleaned as ImageKit does, files published atomically, overwrite rules."""

import errno
import os
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.core.imagekit.rules import clean_name
from app.core.settings import Settings
from app.upload_api import dimensions, parts
from app.upload_api.detect import HEAD_BYTES, detect
from app.upload_api.storage import (
    FileDetails,
    LocalStorage,
    NameTaken,
    StoredFile,
    details_of,
    local,
    unique_name,
)
from app.upload_api.storage.implied import implied_details, implied_id
from app.upload_api.storage.records import decode, encode, next_record, record_name
from tests.support import media_files


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


def test_every_ascii_character_is_kept_or_replaced_by_the_rule() -> None:
    """Names in ASCII (the common case, cleaned by a faster path) follow the same rule as any
    other: letters, digits, '.', '-' and '_' stay, anything else becomes '_'."""
    for code in range(128):
        char = chr(code)
        kept = char in ".-_" or unicodedata.category(char)[0] in "LMN"
        assert clean_name(f"a{char}b.png") == f"a{char if kept else '_'}b.png", code
    assert clean_name("a\u0301b c.png") == "\u00e1b_c.png"  # NFC, then the rule


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


# -- records a file implies (#34) --------------------------------------------------------------


def image_details(data: bytes, **given: Any) -> FileDetails:
    """What an upload of ``data`` (a web image) knows, as the upload API makes it."""
    file_type = detect(data[:HEAD_BYTES], "png")
    assert file_type is not None
    found = dimensions.in_process(Path("/nonexistent"), file_type, data[:HEAD_BYTES])
    assert found is not None
    return details_of(len(data), file_type, found, data[:HEAD_BYTES], **given)


def publish_png(storage: LocalStorage, data: bytes, **options: Any) -> StoredFile:
    given = {k: options.pop(k) for k in ("tags", "is_private_file") if k in options}
    chosen: dict[str, Any] = {"folder": "/", "name": "x.png", "unique": True, "overwrite": False}
    chosen |= options
    return storage.publish(upload(storage, data), details=image_details(data, **given), **chosen)


def test_a_default_upload_of_a_web_image_keeps_no_record_file(tmp_path: Path) -> None:
    """A uniquely named upload whose record says nothing its bytes do not is the file alone:
    no record file; a storage that never saw it reads the same record from the file, with
    ids that follow from the path."""
    storage = LocalStorage(tmp_path)
    stored = publish_png(storage, media_files.image("png", 30, 20))
    assert list((tmp_path / "meta").iterdir()) == []
    assert (stored.width, stored.height, stored.version) == (30, 20, 1)
    assert stored.file_id == stored.version_id == implied_id(stored.file_path)
    assert re.fullmatch("[0-9a-f]{24}", stored.file_id)
    assert LocalStorage(tmp_path).record(stored.file_path) == stored
    assert storage.leftovers() == []


def _late_frame_jpeg() -> bytes:
    """A JPEG whose frame header (its size) lies past ``HEAD_BYTES``: a large APP2 segment
    comes first, as a camera's ICC profile does."""
    data = media_files.image("jpg", 30, 20)
    filler = b"\0" * (2 * HEAD_BYTES)
    return data[:2] + b"\xff\xe2" + (len(filler) + 2).to_bytes(2, "big") + filler + data[2:]


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("x.png", media_files.image("png", 30, 20)),
        ("x.jpg", _late_frame_jpeg()),
        ("x.txt", "café\n".encode() * 2000),
        ("x.pdf", media_files.pdf()),
        ("x.png", b"not an image"),
    ],
)
def test_the_first_bytes_an_upload_holds_tell_what_the_file_tells(
    tmp_path: Path, name: str, data: bytes
) -> None:
    """The storage decides whether a record is implied from the first bytes the upload
    already holds; that gives what reading the file gives (which a later lookup does), a
    JPEG whose size lies past them included."""
    path = tmp_path / name
    path.write_bytes(data)
    from_file = implied_details(path, name, len(data))
    assert implied_details(path, name, len(data), data[:HEAD_BYTES]) == from_file
    if name == "x.jpg":
        assert from_file is not None
        assert (from_file.width, from_file.height) == (30, 20)


@pytest.mark.parametrize("given", [{"tags": ["a"]}, {"is_private_file": True}])
def test_an_upload_that_adds_to_its_bytes_keeps_its_record(
    tmp_path: Path, given: dict[str, Any]
) -> None:
    """Tags, privacy (anything the bytes cannot say) are kept in a record file."""
    storage = LocalStorage(tmp_path)
    stored = publish_png(storage, media_files.image("png"), **given)
    assert len(list((tmp_path / "meta").iterdir())) == 1
    assert LocalStorage(tmp_path).record(stored.file_path) == stored


@pytest.mark.parametrize(
    "path", ["/../secret.png", "/./x.png", "//x.png", "/x.png/", "/a/../../secret.png", "/"]
)
def test_a_record_is_never_made_from_a_file_outside_the_store(tmp_path: Path, path: str) -> None:
    """A path no upload makes is never looked for on disk: a web image beside the store,
    or reached through '.', '..' or empty segments, has no record."""
    storage = LocalStorage(tmp_path)
    data = media_files.image("png")
    (tmp_path / "secret.png").write_bytes(data)
    (tmp_path / "files" / "x.png").write_bytes(data)
    (tmp_path / "files" / "a").mkdir()
    assert storage.record(path) is None


def test_overwriting_a_file_without_a_record_file_keeps_its_id(tmp_path: Path) -> None:
    """A file whose record its bytes imply, overwritten: version 2 keeps its file id, and
    what was made from version 1 goes."""
    storage = LocalStorage(tmp_path)
    first = publish_png(storage, media_files.image("png", 30, 20))
    made = storage.derived_path(first, "thumbnail.jpg")
    made.parent.mkdir(parents=True)
    made.write_bytes(b"thumb")
    name = first.name
    second = publish_png(
        storage, media_files.image("png", 10, 10), name=name, unique=False, overwrite=True
    )
    assert (second.file_id, second.version, second.width) == (first.file_id, 2, 10)
    assert LocalStorage(tmp_path).record(first.file_path) == second
    assert not made.parent.exists()


PRIVACY = ["public", "private"]


@pytest.mark.parametrize("before", ["none", "implied", "public", "private"])
@pytest.mark.parametrize("after", PRIVACY)
def test_new_bytes_are_never_readable_under_a_looser_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, before: str, after: str
) -> None:
    """At every step of publishing (each link and rename), a reader that knows the path and
    finds the bytes of a private upload finds them under a private record; and the bytes it
    replaces, if private, are never read under the new public record. Overwriting and
    first uploads alike, whatever was there."""
    storage = LocalStorage(tmp_path)
    old, new = media_files.image("png", 30, 20), media_files.image("png", 10, 10)
    if before != "none":
        given: dict[str, Any] = {"tags": ["t"]} if before == "public" else {}
        given["is_private_file"] = before == "private"
        publish_png(storage, old, name="x.png", unique=False, **given)
    seen: list[tuple[bytes, bool | None]] = []

    def observe() -> None:
        content = tmp_path / "files" / "x.png"
        if content.exists():
            found = LocalStorage(tmp_path).record("/x.png")
            seen.append((content.read_bytes(), None if found is None else found.is_private_file))

    for name in ("link", "replace"):
        original = getattr(os, name)

        def step(*args: Any, _original: Any = original, **kwargs: Any) -> None:
            _original(*args, **kwargs)
            observe()

        monkeypatch.setattr(os, name, step)
    publish_png(
        storage,
        new,
        name="x.png",
        unique=False,
        overwrite=True,
        is_private_file=after == "private",
    )
    monkeypatch.undo()
    assert seen[-1] == (new, after == "private")
    for data, private in seen:
        if (data == new and after == "private") or (data == old and before == "private"):
            assert private is True, (data == new, seen)


@pytest.mark.parametrize("before", ["none", "implied", "private"])
def test_a_private_upload_that_fails_leaves_the_record_it_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, before: str
) -> None:
    """A private upload whose bytes cannot be put in place after its record was (the disk
    fails) leaves the path as it found it: the record before, or none."""
    storage = LocalStorage(tmp_path)
    if before != "none":
        publish_png(
            storage,
            media_files.image("png", 30, 20),
            name="x.png",
            unique=False,
            is_private_file=before == "private",
        )
    was = LocalStorage(tmp_path).record("/x.png")

    def failing(*_: Any, **__: Any) -> None:
        raise OSError(errno.EIO, "disk failed")

    monkeypatch.setattr(local, "_publish", failing)
    with pytest.raises(OSError, match="disk failed"):
        publish_png(
            storage,
            media_files.image("png", 10, 10),
            name="x.png",
            unique=False,
            overwrite=True,
            is_private_file=True,
        )
    assert LocalStorage(tmp_path).record("/x.png") == was
    assert storage.leftovers() == []


def test_a_public_upload_whose_record_cannot_be_placed_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A public upload with a record of its own (tags) whose bytes went in place but whose
    record could not (the disk fails): refused, and its bytes are not left to be read as the
    record they imply."""
    storage = LocalStorage(tmp_path)
    real_replace = os.replace

    def failing(source: Any, target: Any) -> None:
        if str(target).startswith(str(storage.meta)):
            raise OSError(errno.EIO, "disk failed")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="disk failed"):
        publish_png(storage, media_files.image("png", 10, 10), name="x.png", tags=["t"])
    monkeypatch.undo()
    assert list((tmp_path / "files").iterdir()) == []
    assert storage.leftovers() == []


def test_a_private_upload_to_a_taken_name_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    """Without overwrite, a private upload to a name with a record, or with a file whose
    record its bytes imply, is refused; what was there stays."""
    storage = LocalStorage(tmp_path)
    kept = publish_png(
        storage, media_files.image("png", 30, 20), name="x.png", unique=False, tags=["t"]
    )
    implied = publish_png(storage, media_files.image("png", 30, 20))
    for taken in (kept, implied):
        with pytest.raises(NameTaken):
            publish_png(
                storage,
                media_files.image("png", 10, 10),
                name=taken.name,
                unique=False,
                is_private_file=True,
            )
        assert LocalStorage(tmp_path).record(taken.file_path) == taken
    assert storage.leftovers() == []


def test_implied_records_off_keeps_a_record_file_for_every_upload(tmp_path: Path) -> None:
    """With implied records off (while replicas of an earlier version share the volume), a
    default upload of a web image keeps its record file; a file stored without one is still
    read."""
    before = publish_png(LocalStorage(tmp_path), media_files.image("png"))
    storage = LocalStorage(tmp_path, implied_records=False)
    stored = publish_png(storage, media_files.image("png"))
    assert [p.name for p in (tmp_path / "meta").iterdir()] == [record_name(stored.file_path)]
    assert storage.record(stored.file_path) == stored
    assert storage.record(before.file_path) == before


def test_the_setting_reaches_the_storage(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    """``UPLOAD_AUTH_STORAGE_IMPLIED_RECORDS`` (on by default) is what the storage does."""
    for value in (True, False):
        settings = make_settings(storage_dir=tmp_path, storage_implied_records=value)
        made = parts.storage(settings)
        assert isinstance(made, LocalStorage)
        assert made.implied_records is value
    assert make_settings(storage_dir=tmp_path).storage_implied_records is True
