"""Uploads through a Redis Sentinel failover: the upload API's ledger on a real Sentinel set
(a primary, a replica, three sentinels), the primary killed while v2 uploads arrive. An upload
is stored, or answered 503 while no primary answers (the client retries), or, with a credential
issued before the failover, refused as one to fetch again (the new primary may lack the last
burns: a new epoch); every file is stored once in the end, and no credential stores two."""

import asyncio
import gc
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from app.core.keys import KeyPair
from app.core.settings import Settings
from tests.support.apps import FakeClock
from tests.support.redis_sets import SentinelSet
from tests.support.uploads import V2, upload_client, v2_fields

pytestmark = pytest.mark.anyio

UPLOADS = 80


# redis-py drops, without closing it, a connection to a sentinel that failed during the
# election; the collector closes it (tests/ledger/test_redis_topologies.py).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_no_credential_stores_two_files_through_a_failover(
    make_settings: Callable[..., Settings],
    storage_dir: Path,
    clock: FakeClock,
    pair: KeyPair,
    tmp_path: Path,
) -> None:
    redis = SentinelSet(tmp_path / "redis")
    redis.start()
    try:
        settings = make_settings(storage_dir=storage_dir, redis_url=redis.url)
        credentials = []
        for i in range(UPLOADS):
            data = f"upload {i}\n".encode() * 8
            fields = v2_fields(pair, clock, data, name=f"f{i:03d}.txt", mime="text/plain")
            credentials.append((fields, data, f"f{i:03d}.txt"))
        stored: dict[str, int] = {}
        unavailable = fetched_again = 0

        async with upload_client(settings, clock) as http:

            async def upload(i: int) -> None:
                nonlocal unavailable, fetched_again
                fields, data, name = credentials[i]
                for _ in range(300):
                    answer = await http.post(V2, data=fields, files={"file": (name, data)})
                    if answer.status_code == 503:  # a client retrying its 503s
                        unavailable += 1
                        await asyncio.sleep(0.1)
                        continue
                    if answer.status_code == 400 and "fetch a new" in answer.text:
                        fetched_again += 1  # as the SDKs' callers do: a new credential,
                        clock.advance(2)  # a moment later (the fake clock moves only so)
                        fields = v2_fields(pair, clock, data, name=name, mime="text/plain")
                        credentials[i] = (fields, data, name)
                        continue
                    assert answer.status_code == 200, answer.text
                    stored[fields["token"]] = stored.get(fields["token"], 0) + 1
                    return
                raise AssertionError(f"upload {i} never stored")

            async def uploader(mine: list[int]) -> None:
                for i in mine:
                    await upload(i)
                    await asyncio.sleep(0.03)

            uploads = asyncio.gather(*(uploader(list(range(k, UPLOADS, 4))) for k in range(4)))
            await asyncio.sleep(0.2)
            await asyncio.to_thread(redis.fail_over)
            await uploads
            for fields, data, name in credentials:  # every credential replayed
                again = await http.post(V2, data=fields, files={"file": (name, data)})
                assert again.status_code == 400, again.text
        assert len(stored) == UPLOADS
        assert set(stored.values()) == {1}
        assert unavailable > 0  # the failover was met
        assert fetched_again > 0  # and cost credentials issued before it a new fetch
    finally:
        redis.stop()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
