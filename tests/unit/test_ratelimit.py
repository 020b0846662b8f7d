"""The in-memory sliding-window counters: the budget holds, Retry-After is right to the second,
refusals cost nothing, idle callers are swept, and every decision is the one ``limits`` makes."""

import asyncio
import copy
import random

import pytest
from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from app.credential_service.ratelimit import SlidingWindows

START = 1_800_000_000.0  # a multiple of 60: the minute window starts here
KEY = ("v1", "api_key:backend")


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def test_budget_and_retry_after_to_the_second() -> None:
    """3/minute: three pass, the fourth is refused, and asking again after exactly Retry-After
    seconds passes while a second earlier does not."""
    clock = Clock()
    windows = SlidingWindows(clock)
    item = parse("3/minute")
    assert [windows.hit(item, KEY, 1) for _ in range(3)] == [None, None, None]
    clock.now += 10
    refusal = windows.hit(item, KEY, 1)
    assert refusal is not None
    # The three sit in this window, which ends in 50 s; at the next window's first instant the
    # sliding window still covers all three of them, a second later less than three.
    assert refusal.retry_after == 51
    clock.now += refusal.retry_after - 1
    assert windows.hit(item, KEY, 1) is not None
    clock.now += 1
    assert windows.hit(item, KEY, 1) is None


def test_previous_window_counts_by_its_remaining_share() -> None:
    """A full window weighs on the next one in proportion to the overlap: half-way through the
    next minute, half the budget is free again."""
    clock = Clock()
    windows = SlidingWindows(clock)
    item = parse("10/minute")
    for _ in range(10):
        assert windows.hit(item, KEY, 1) is None
    clock.now = START + 60 + 30
    assert [windows.hit(item, KEY, 1) is None for _ in range(6)] == [True] * 5 + [False]


def test_refusals_charge_nothing_and_budgets_are_separate() -> None:
    """A refused charge leaves the budget as it was; other keys and other limits have their own."""
    clock = Clock()
    windows = SlidingWindows(clock)
    quota = parse("100/hour")
    assert windows.hit(quota, KEY, 60) is None
    assert windows.hit(quota, KEY, 50) is not None
    assert windows.hit(quota, KEY, 40) is None  # 60 + 40: the refused 50 was never counted
    assert windows.hit(quota, ("v1", "api_key:other"), 100) is None
    assert windows.hit(parse("100/minute"), KEY, 100) is None


def test_a_charge_over_the_whole_budget_is_refused_for_a_window() -> None:
    clock = Clock()
    refusal = SlidingWindows(clock).hit(parse("100/hour"), KEY, 101)
    assert refusal is not None
    assert refusal.retry_after == 3600


def test_idle_counters_are_swept() -> None:
    """Counters whose windows have slid out are dropped: memory follows active callers only."""
    clock = Clock()
    windows = SlidingWindows(clock)
    item = parse("5/second")
    for n in range(1000):
        windows.hit(item, ("v1", f"ip:10.0.{n // 256}.{n % 256}"), 1)
    assert len(windows._counts) == 1000
    clock.now += SlidingWindows.SWEEP_SECONDS
    windows.hit(item, KEY, 1)
    assert len(windows._counts) == 1


@pytest.mark.parametrize("seed", range(5))
def test_every_decision_matches_limits(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Random charges at random times: each allow or refuse is the one ``limits``' own
    sliding-window counter (the strategy used with Redis) makes on the same clock, and every
    Retry-After is exact: the same charge passes after it, and not a second sooner."""
    clock = Clock()
    monkeypatch.setattr("limits.aio.storage.memory.time.time", clock)
    rng = random.Random(seed)  # noqa: S311 - a reproducible schedule, not a secret
    item = parse("10/minute")
    ours = SlidingWindows(clock)

    def after(seconds: int, cost: int) -> bool:
        probe = copy.deepcopy(ours)  # its own clock and counters
        probe.clock.now += seconds  # type: ignore[attr-defined]
        return probe.hit(item, KEY, cost) is None

    async def run() -> list[tuple[bool, bool]]:
        theirs = SlidingWindowCounterRateLimiter(MemoryStorage())
        decisions = []
        for _ in range(400):
            clock.now += rng.choice([0.0, 0.3, 1.7, 4.0, 11.0, 45.0])
            cost = rng.choice([1, 1, 1, 2, 5])
            refusal = ours.hit(item, KEY, cost)
            decisions.append((refusal is None, await theirs.hit(item, *KEY, cost=cost)))
            if refusal is not None:
                assert after(refusal.retry_after, cost)
                assert refusal.retry_after == 1 or not after(refusal.retry_after - 1, cost)
        return decisions

    decisions = asyncio.run(run())
    assert [a for a, _ in decisions] == [b for _, b in decisions]
    allowed = sum(a for a, _ in decisions)
    assert 50 < allowed < 350  # both outcomes, many times
