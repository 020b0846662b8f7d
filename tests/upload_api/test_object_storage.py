"""Files in an S3-compatible bucket (a real S3-wire server, moto's, on loopback): the same
guarantees as on disk (atomic publishing, names, versions, nothing left behind by a refusal, a
failure or a killed process), and the store's own troubles answered 503, never a 500.

The storage-level promises run on both storages (``storage`` is parametrized), so the bucket is
held to exactly what the directory does."""

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import obstore
import pytest

from app.core.settings import Settings
from app.upload_api.storage import (
    FileDetails,
    LocalStorage,
    NameTaken,
    Spool,
    Storage,
    StoredFile,
)
from app.upload_api.storage.objects import ObjectStorage, parse_range
from tests.support import media_files as mf
from tests.support.apps import FakeClock
from tests.support.buckets import S3Server
from tests.support.samples import png
from tests.support.uploads import V1, basic, owner_stored, owner_upload, upload_client

pytestmark = pytest.mark.anyio


def details(size: int, mime: str = "text/plain", extension: str = "txt") -> FileDetails:
    return FileDetails(size=size, mime=mime, extension=extension)


def spooled(storage: Storage, data: bytes) -> Path:
    """An upload as the form reader leaves it: a file in the spool."""
    fd, path = storage.new_temp()
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return path


async def read(storage: Storage, stored: StoredFile) -> bytes:
    async with storage.local_copy(stored) as path:
        return path.read_bytes()


@pytest.fixture(params=["local", "s3"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    made: Storage
    if request.param == "s3":
        s3: S3Server = request.getfixturevalue("s3")
        made = ObjectStorage(tmp_path / "spool", s3.config(s3.new_bucket()))
    else:
        made = LocalStorage(tmp_path / "files")
    await made.start(stale_after=3600)
    try:
        yield made
    finally:
        await made.stop()


async def commit(
    storage: Storage,
    data: bytes,
    name: str = "x.txt",
    *,
    folder: str = "/",
    unique: bool = False,
    overwrite: bool = False,
) -> StoredFile:
    return await storage.commit(
        spooled(storage, data),
        folder=folder,
        name=name,
        unique=unique,
        overwrite=overwrite,
        details=details(len(data)),
    )


async def test_a_file_is_published_with_its_record(storage: Storage) -> None:
    stored = await commit(storage, b"abc", folder="/a/b")
    assert stored.file_path == "/a/b/x.txt"
    assert stored.version == 1
    assert stored.version_id == stored.file_id
    assert await storage.lookup("/a/b/x.txt") == stored
    assert await read(storage, stored) == b"abc"
    assert await storage.lookup("/a/b/y.txt") is None
    assert storage.spool.leftovers() == []


async def test_without_overwrite_the_first_file_stays(storage: Storage) -> None:
    first = await commit(storage, b"one")
    with pytest.raises(NameTaken):
        await commit(storage, b"two")
    assert await storage.lookup("/x.txt") == first
    assert await read(storage, first) == b"one"
    assert storage.spool.leftovers() == []


async def test_an_overwrite_is_the_next_version(storage: Storage) -> None:
    first = await commit(storage, b"one", overwrite=True)
    second = await commit(storage, b"two", overwrite=True)
    assert (second.file_id, second.version) == (first.file_id, 2)
    assert second.version_id != first.version_id
    assert await storage.lookup("/x.txt") == second
    assert await read(storage, second) == b"two"


async def test_unique_names_never_collide(storage: Storage) -> None:
    made = await asyncio.gather(*(commit(storage, b"x", unique=True) for _ in range(30)))
    assert len({stored.file_path for stored in made}) == 30
    assert storage.spool.leftovers() == []


async def test_what_is_derived_belongs_to_its_version(storage: Storage) -> None:
    first = await commit(storage, b"one", overwrite=True)
    made = storage.spool.work / "thumb.webp"
    made.write_bytes(b"thumbnail")
    await storage.keep_derived(first, "thumbnail.webp", made)
    assert await storage.has_derived(first, "thumbnail.webp")
    second = await commit(storage, b"two", overwrite=True)
    assert not await storage.has_derived(second, "thumbnail.webp")


# -- the bucket's own ---------------------------------------------------------------------


@pytest.fixture
async def bucket(s3: S3Server, tmp_path: Path) -> AsyncIterator[tuple[ObjectStorage, str]]:
    name = s3.new_bucket()
    storage = ObjectStorage(tmp_path / "spool", s3.config(name, part_size=5 * 1024 * 1024))
    await storage.start(stale_after=3600)
    try:
        yield storage, name
    finally:
        await storage.stop()


async def settled(storage: ObjectStorage) -> None:
    """The background clean-ups done."""
    while storage._background:
        await asyncio.gather(*storage._background, return_exceptions=True)


async def test_a_large_file_goes_up_in_parts_and_arrives_whole(
    bucket: tuple[ObjectStorage, str], s3: S3Server
) -> None:
    """Above the part size a file is a multipart upload, read from the spool part by part;
    the bucket holds exactly its bytes, and nothing but the file and its record stays."""
    storage, name = bucket
    data = os.urandom(12 * 1024 * 1024 + 5)
    stored = await commit(storage, data, "big.bin")
    assert hashlib.sha256(await read(storage, stored)).digest() == hashlib.sha256(data).digest()
    await settled(storage)
    assert sorted(s3.keys(name)) == sorted(
        [f"objects/{stored.version_id}", f"records/{hashlib.sha256(b'/big.bin').hexdigest()}.json"]
    )


async def test_a_replaced_version_leaves_the_bucket(
    bucket: tuple[ObjectStorage, str], s3: S3Server
) -> None:
    storage, name = bucket
    first = await commit(storage, b"one", overwrite=True)
    made = storage.spool.work / "thumb.webp"
    made.write_bytes(b"thumbnail")
    await storage.keep_derived(first, "thumbnail.webp", made)
    second = await commit(storage, b"two", overwrite=True)
    await settled(storage)
    keys = s3.keys(name)
    assert f"objects/{second.version_id}" in keys
    assert not [k for k in keys if first.version_id in k]
    assert not [k for k in keys if k.startswith("pending/")]


async def test_racing_writers_are_settled_by_the_store(
    bucket: tuple[ObjectStorage, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another replica publishes the same path while this one sends its bytes: without
    overwrite this one is refused and its bytes go; with overwrite it becomes the version
    after the other's (no version number given twice, none lost)."""
    storage, _ = bucket
    real_put_file = ObjectStorage._put_file

    def racing(data: bytes, overwrite: bool) -> Callable[..., Any]:
        async def put_file(self: ObjectStorage, *args: Any) -> None:
            monkeypatch.setattr(ObjectStorage, "_put_file", real_put_file)
            await commit(self, data, overwrite=overwrite)  # the other replica wins the record
            await real_put_file(self, *args)

        return put_file

    monkeypatch.setattr(ObjectStorage, "_put_file", racing(b"theirs", overwrite=False))
    with pytest.raises(NameTaken):
        await commit(storage, b"mine", overwrite=False)
    theirs = await storage.lookup("/x.txt")
    assert theirs is not None
    assert await read(storage, theirs) == b"theirs"

    monkeypatch.setattr(ObjectStorage, "_put_file", racing(b"second", overwrite=True))
    mine = await commit(storage, b"third", overwrite=True)
    assert mine.version == 3
    assert await storage.lookup("/x.txt") == mine
    assert await read(storage, mine) == b"third"
    await settled(storage)


async def test_a_publisher_killed_before_its_record_leaves_nothing_after_the_sweep(
    bucket: tuple[ObjectStorage, str], s3: S3Server
) -> None:
    """What a process killed between the bytes and the record leaves (a pending marker and
    bytes no record names) is removed by a starting replica's sweep; a marker whose record
    does name its bytes (killed after the record) costs the bytes nothing."""
    storage, name = bucket
    kept = await commit(storage, b"kept")
    await settled(storage)
    record_key = f"records/{hashlib.sha256(b'/x.txt').hexdigest()}.json"
    store = storage.store
    await obstore.put_async(store, "pending/deadbeef", record_key.encode())
    await obstore.put_async(store, "objects/deadbeef", b"orphan")
    await obstore.put_async(store, f"pending/{kept.version_id}", record_key.encode())
    assert await storage.sweep_pending(older_than=3600) == 0  # too young: maybe still running
    assert await storage.sweep_pending(older_than=0) == 1
    assert sorted(s3.keys(name)) == sorted([f"objects/{kept.version_id}", record_key])
    assert await read(storage, kept) == b"kept"


async def test_a_record_of_another_path_is_no_answer(bucket: tuple[ObjectStorage, str]) -> None:
    """A record is found by its path's hash and must name that path."""
    storage, _ = bucket
    await commit(storage, b"abc")
    key = f"records/{hashlib.sha256(b'/x.txt').hexdigest()}.json"
    found = await obstore.get_async(storage.store, key)
    doc = bytes(await found.bytes_async()).replace(b'"/x.txt"', b'"/y.txt"')
    await obstore.put_async(storage.store, key, doc)
    assert await storage.lookup("/x.txt") is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9", (0, 10)),
        ("bytes=90-", (90, 100)),
        ("bytes=-10", (90, 100)),
        ("bytes=95-200", (95, 100)),
        ("bytes=-200", (0, 100)),
        ("bytes=100-", "unsatisfiable"),
        ("bytes=-0", "unsatisfiable"),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        ("bytes=5-1", None),
        ("bytes=a-b", None),
        ("bytes=", None),
    ],
)
def test_ranges_as_rfc_9110_reads_them(header: str, expected: object) -> None:
    assert parse_range(header, 100) == expected


# -- through the upload API ---------------------------------------------------------------


@pytest.fixture
def bucket_settings(
    make_settings: Callable[..., Settings], storage_dir: Path, s3: S3Server
) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        return make_settings(
            storage_dir=storage_dir,
            public_url="http://files.test",
            **{**s3.settings(s3.new_bucket()), **overrides},
        )

    return make


async def test_redirect_delivery_hands_out_a_presigned_url_after_our_checks(
    bucket_settings: Callable[..., Settings], clock: FakeClock, private_key: str
) -> None:
    """With redirect delivery a public file is a 302 to the bucket, whose URL serves the bytes
    with the file's type; a private one is still refused unsigned (401) before any redirect."""
    data = png()
    settings = bucket_settings(s3_delivery="redirect")
    async with upload_client(settings, clock) as http:
        public = await owner_stored(http, private_key, "cat.png", data)
        private = await owner_stored(http, private_key, "mine.png", data, isPrivateFile="true")
        answer = await http.get(public["url"])
        assert answer.status_code == 302
        assert answer.headers["cache-control"].startswith("public, max-age=")
        async with httpx.AsyncClient(timeout=10) as outside:  # the browser, at the bucket
            fetched = await outside.get(answer.headers["location"])
        assert fetched.status_code == 200
        assert fetched.content == data
        assert fetched.headers["content-type"] == "image/png"
        assert (await http.get(private["url"])).status_code == 401


async def test_thumbnails_are_made_from_the_bucket_and_kept_there(
    bucket_settings: Callable[..., Settings], clock: FakeClock, private_key: str, s3: S3Server
) -> None:
    settings = bucket_settings()
    async with upload_client(settings, clock) as http:
        body = await owner_stored(http, private_key, "photo.jpg", mf.camera_jpeg(640, 480))
        first = await http.get(body["thumbnailUrl"])
        assert first.status_code == 200
        assert first.headers["content-type"] == "image/webp"
        again = await http.get(body["thumbnailUrl"])
        assert again.content == first.content
    derived = [k for k in s3.keys(settings.s3_bucket or "") if k.startswith("derived/")]
    assert len(derived) == 1  # rendered once, kept under the version it was made from
    assert derived[0].startswith(f"derived/{body['versionInfo']['id']}/")
    assert derived[0].endswith(".webp")


async def test_a_store_that_does_not_answer_is_a_503_and_nothing_is_left(
    make_settings: Callable[..., Settings],
    storage_dir: Path,
    clock: FakeClock,
    private_key: str,
    tmp_path: Path,
) -> None:
    """The store gone: uploads are 503 with Retry-After (the SDKs retry), readiness says why,
    served files are 503, and the spool keeps nothing; back, everything works again."""
    store = S3Server(tmp_path / "moto.log")
    store.start()
    try:
        bucket = store.new_bucket()
        settings = make_settings(storage_dir=storage_dir, **store.settings(bucket, s3_timeout=2))
        async with upload_client(settings, clock) as http:
            stored = await owner_stored(http, private_key, "before.png", png())
            store.stop()
            refused = await owner_upload(http, private_key, "during.png", png())
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"] == "5"
            assert store.secret_access_key not in refused.text
            assert (await http.get("/readyz")).status_code == 503
            assert (await http.get(stored["url"])).status_code == 503
            assert Spool(storage_dir).leftovers() == []
            store.start()  # moto forgot everything: the bucket is made again
            async with httpx.AsyncClient(timeout=10) as admin:
                (await admin.put(f"{store.endpoint}/{bucket}")).raise_for_status()
            assert (await http.get("/readyz")).status_code == 200
            again = await owner_upload(http, private_key, "after.png", png())
            assert again.status_code == 200, again.text
            assert (await http.get(again.json()["url"])).content == png()
    finally:
        store.stop()


async def test_a_refused_upload_never_reaches_the_bucket(
    bucket_settings: Callable[..., Settings], clock: FakeClock, private_key: str, s3: S3Server
) -> None:
    settings = bucket_settings()
    async with upload_client(settings, clock) as http:
        refused = await http.post(
            V1,
            data={"fileName": "evil.png"},
            files={"file": ("evil.png", b"MZ\x90\x00 not a png", "image/png")},
            headers=basic(private_key),
        )
        assert refused.status_code == 400
    assert s3.keys(settings.s3_bucket or "") == []


async def test_a_bucket_without_a_shared_ledger_is_said_at_start(
    bucket_settings: Callable[..., Settings],
    clock: FakeClock,
    private_key: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Replicas that share a bucket but not a ledger would each accept a credential once: the
    upload API says so when it starts (one replica is fine)."""
    async with upload_client(bucket_settings(), clock) as http:
        assert (await owner_upload(http, private_key, "a.png", png())).status_code == 200
    logs = capsys.readouterr().out
    assert "run one replica only, or set UPLOAD_AUTH_REDIS_URL" in logs


async def test_the_upload_api_starts_while_the_store_does_not_answer(
    make_settings: Callable[..., Settings],
    storage_dir: Path,
    clock: FakeClock,
    private_key: str,
    tmp_path: Path,
) -> None:
    """A replica starting while the bucket is unreachable starts (its sweep is left for the
    next start), is not ready and answers uploads 503; once the store answers, it serves."""
    store = S3Server(tmp_path / "moto.log")
    bucket = "test-late"
    settings = make_settings(storage_dir=storage_dir, **store.settings(bucket, s3_timeout=1))
    try:
        async with upload_client(settings, clock) as http:
            assert (await http.get("/readyz")).status_code == 503
            refused = await owner_upload(http, private_key, "early.png", png())
            assert refused.status_code == 503, refused.text
            store.start()
            async with httpx.AsyncClient(timeout=10) as admin:
                (await admin.put(f"{store.endpoint}/{bucket}")).raise_for_status()
            assert (await http.get("/readyz")).status_code == 200
            stored = await owner_stored(http, private_key, "later.png", png())
            assert (await http.get(stored["url"])).content == png()
    finally:
        store.stop()
