"""The ledger, the webhook outbox and the rate limits on Redis as production runs it: one
server, a Sentinel set and a Cluster, each made of real ``redis-server`` processes; and a
failover during burns, which never lets a credential be accepted twice.

Replication is asynchronous: a promoted replica may lack the last burns its old primary
acknowledged. The ledger binds its epoch to the primary's replication history, so a failover
begins a new epoch and every credential issued before it is refused once (the client fetches
a new one), rather than accepted a second time."""

import asyncio
import gc
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path

import pytest
from limits import RateLimitItemPerMinute

from app.core.ledger import FORGOTTEN_MARGIN_MS, Burn, LedgerUnavailable, credential_key
from app.core.ledger.redis import RedisLedger
from app.core.webhooks.outbox import RedisOutbox
from app.credential_service.ratelimit import RateLimiter
from tests.support.redis_sets import ClusterSet, Node, SentinelSet, command, wait_for
from tests.support.servers import Redis

pytestmark = pytest.mark.anyio

TOPOLOGIES = ["server", "sentinel", "cluster"]


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture(scope="module")
def topologies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One of each, for the module; their URLs by kind."""
    root = tmp_path_factory.mktemp("redis")
    server = Redis(root / "server")
    sentinel, cluster = SentinelSet(root / "sentinel"), ClusterSet(root / "cluster")
    try:
        for each in (server, sentinel, cluster):
            each.start()
        yield {"server": server.url, "sentinel": sentinel.url, "cluster": cluster.url}
    finally:
        for each in (server, sentinel, cluster):
            each.stop()


@pytest.fixture(params=TOPOLOGIES)
def url(request: pytest.FixtureRequest, topologies: dict[str, str]) -> str:
    return topologies[request.param]


@pytest.fixture
async def ledgers(url: str) -> AsyncIterator[tuple[RedisLedger, RedisLedger]]:
    """Two replicas' ledgers on the same Redis."""
    first, second = RedisLedger(url), RedisLedger(url)
    await first.start(now_ms())
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


def accepted(burn: Burn, issued_ms: int) -> bool:
    """The upload API's rule: fresh, and issued no earlier than the ledger's epoch."""
    return burn.fresh and issued_ms >= burn.epoch_ms


async def test_the_ledger_is_shared_by_replicas(
    ledgers: tuple[RedisLedger, RedisLedger], url: str
) -> None:
    first, second = ledgers
    key = credential_key("v1", "public", "token-" + str(time.time_ns()))
    epoch = await first.record(key, b'{"grant": 1}', 60, now_ms=now_ms())
    burn = await second.burn(key, 60, now_ms=now_ms())
    assert burn.fresh
    assert burn.grant == b'{"grant": 1}'
    assert burn.epoch_ms == epoch
    assert not (await first.burn(key, 60, now_ms=now_ms())).fresh
    await second.note_use(key, b'{"receipt": 1}', 60)
    assert await first.lookup(key) == (b'{"grant": 1}', b'{"receipt": 1}')
    assert await first.ping(now_ms())
    if url.startswith("redis+cluster"):  # every key of the ledger in the one tagged slot
        assert first.epoch_key.startswith("{upload-auth}:")


async def test_the_outbox_works_on_every_topology(url: str) -> None:
    """Every operation, the transactional ones included (a Cluster pipelines them to the one
    node of the tagged slot)."""
    outbox = RedisOutbox(url)
    try:
        await outbox.purge(None)
        for event_id in [e for e, _ in await _pending_ids(outbox)]:
            await outbox.done(event_id)
        assert await outbox.check_marker(now_ms())
        moment = now_ms()
        assert await outbox.add("e1", b'{"n": 1}', moment)
        assert not await outbox.add("e1", b'{"n": 1}', moment)
        assert await outbox.add("e2", b'{"n": 2}', moment)
        assert await outbox.has_room()
        claimed = await outbox.claim(moment + 1, 30_000, 10)
        assert sorted(p.event_id for p in claimed) == ["e1", "e2"]
        await outbox.retry("e1", 1, moment, "502")
        assert [p.event_id for p in await outbox.claim(moment + 1, 30_000, 10)] == ["e1"]
        await outbox.done("e2")
        await outbox.dead("e1", 3, "gave up", moment)
        assert [d.event_id for d in await outbox.dead_letters()] == ["e1"]
        assert await outbox.replay(["e1"], moment) == 1
        await outbox.dead("e1", 3, "gave up", moment)
        assert await outbox.purge(["e1"]) == 1
        assert (await outbox.counts())["dead"] == 0
    finally:
        await outbox.close()


async def _pending_ids(outbox: RedisOutbox) -> list[tuple[str, bytes]]:
    return [(p.event_id, p.body) for p in await outbox.claim(now_ms() + 10**9, 1, 1000)]


async def test_rate_limits_are_shared_on_every_topology(url: str) -> None:
    fallbacks: list[int] = []
    first = RateLimiter(url, lambda: fallbacks.append(1))
    second = RateLimiter(url, lambda: fallbacks.append(1))
    limit = RateLimitItemPerMinute(3)
    caller = "caller-" + str(time.time_ns())
    results = [await limiter.hit(limit, caller) for limiter in (first, second, first, second)]
    assert results[:3] == [None, None, None]
    assert results[3] is not None
    assert results[3].retry_after >= 1
    assert fallbacks == []
    assert await first.redis_status() == "ok"
    await first.close()
    await second.close()


# -- failovers ----------------------------------------------------------------------------


async def burn_until_answered(ledger: RedisLedger, key: str) -> Burn:
    """A burn, tried again while the ledger is unavailable (the upload API answers 503 then,
    and the client retries)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return await ledger.burn(key, 120, now_ms=now_ms())
        except LedgerUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


# redis-py drops, without closing them, connections to sentinels and nodes that failed during
# the election (its sentinel discovery, its cluster refresh); the collector closes them.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("kind", ["sentinel", "cluster"])
async def test_a_failover_during_burns_accepts_no_credential_twice(
    kind: str, tmp_path: Path
) -> None:
    """Burns run while the primary holding the ledger is killed (SIGKILL) and a replica is
    promoted. Every burn is answered or refused as unavailable (never wrongly), no credential
    is accepted twice, and new credentials are accepted once the new primary serves."""
    redis = SentinelSet(tmp_path) if kind == "sentinel" else ClusterSet(tmp_path)
    redis.start()
    ledger = RedisLedger(redis.url)
    try:
        await ledger.start(now_ms())
        issued = now_ms()
        keys = [credential_key("v2", f"{kind}-{i}") for i in range(300)]
        acceptances = dict.fromkeys(keys, 0)
        answered: list[str] = []

        async def burner(mine: list[str]) -> None:  # uploads arriving through the failover
            for key in mine:
                burn = await burn_until_answered(ledger, key)
                acceptances[key] += accepted(burn, issued)
                answered.append(key)
                await asyncio.sleep(0.02)

        await burner(keys[:8])  # some burns on the old primary, whatever the timing
        first_pass = asyncio.gather(*(burner(keys[8 + i :: 4]) for i in range(4)))
        await asyncio.sleep(0.05)
        before_the_kill = len(answered)
        if isinstance(redis, SentinelSet):
            await asyncio.to_thread(redis.fail_over)
        else:
            await asyncio.to_thread(redis.fail_over, "{upload-auth}:epoch")
        await first_pass
        assert before_the_kill < len(keys) // 2  # the burns went on through the failover
        for key in keys:  # every credential once more, as a replayed request would
            burn = await burn_until_answered(ledger, key)
            acceptances[key] += accepted(burn, issued)
        assert max(acceptances.values()) <= 1
        assert (await burn_until_answered(ledger, keys[0])).epoch_ms > issued  # a new history
        after = now_ms() + FORGOTTEN_MARGIN_MS + 1
        fresh = credential_key("v2", f"{kind}-after-the-failover")
        assert accepted(await burn_until_answered(ledger, fresh), after)
        assert not accepted(await burn_until_answered(ledger, fresh), after)
    finally:
        await ledger.close()
        redis.stop()
        # Collected here, so that their warnings are not raised in whichever test runs next.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


async def test_a_promoted_replica_that_missed_burns_begins_a_new_epoch(tmp_path: Path) -> None:
    """The failover's worst case, made on purpose: replicas are promoted while their primary
    goes on accepting burns it never sends them (a partition). A burn accepted there is fresh
    again on a promoted replica: unbound (one server, whose restarts persistence covers), the
    credential passes twice; with the epoch bound to the replication history, it is refused."""
    primary = Node(tmp_path, "primary")
    primary.start()
    replicas = [
        Node(tmp_path, f"replica-{i}", "--replicaof", "127.0.0.1", str(primary.port))
        for i in range(2)
    ]
    for replica in replicas:
        replica.start()
    old = RedisLedger(f"redis://127.0.0.1:{primary.port}/0", bound=True)
    try:
        issued = now_ms()
        await old.start(issued - 10)
        seen = credential_key("v2", "replicated")
        assert accepted(await old.burn(seen, 120, now_ms=now_ms()), issued)
        for replica in replicas:
            wait_for(partial(_holds, replica, "upload-auth:used:" + seen), "replicated")
            command(replica.port, "REPLICAOF", "NO", "ONE")  # promoted, cut off
        missed = credential_key("v2", "missed")
        assert accepted(await old.burn(missed, 120, now_ms=now_ms()), issued)
        for replica, bound in zip(replicas, (False, True), strict=True):
            new = RedisLedger(f"redis://127.0.0.1:{replica.port}/0", bound=bound)
            try:
                assert not accepted(await new.burn(seen, 120, now_ms=now_ms()), issued)
                burn = await new.burn(missed, 120, now_ms=now_ms())
                assert burn.fresh  # the promoted replica never heard of it
                assert accepted(burn, issued) is not bound
            finally:
                await new.close()
    finally:
        await old.close()
        for node in (*replicas, primary):
            node.stop()


def _holds(node: Node, key: str) -> bool:
    return command(node.port, "EXISTS", key) == "1"
