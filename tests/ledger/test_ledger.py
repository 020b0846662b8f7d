"""The in-memory credential ledger: once only, remembered until expiry, grants read back with
the burn, and an epoch that starts when the ledger does."""

import pytest

from app.core.ledger import MemoryLedger, credential_key
from tests.support.apps import START, FakeClock

pytestmark = pytest.mark.anyio


def _ms(clock: FakeClock) -> int:
    return int(clock() * 1000)


async def test_a_credential_burns_once(clock: FakeClock) -> None:
    """The first burn wins; every later one is refused."""
    ledger = MemoryLedger(clock)
    key = credential_key("v1", "public_x", "token-1")
    assert (await ledger.burn(key, 60, now_ms=_ms(clock))).fresh
    assert not (await ledger.burn(key, 60, now_ms=_ms(clock))).fresh
    other = credential_key("v1", "public_y", "token-1")
    assert (await ledger.burn(other, 60, now_ms=_ms(clock))).fresh


async def test_burned_credentials_are_forgotten_after_their_ttl(clock: FakeClock) -> None:
    """Memory stays bounded: entries go once the credential could not pass anyway."""
    ledger = MemoryLedger(clock)
    for i in range(100):
        await ledger.burn(credential_key("v2", str(i)), 60, now_ms=_ms(clock))
    clock.advance(59)
    assert not (await ledger.burn(credential_key("v2", "5"), 60, now_ms=_ms(clock))).fresh
    clock.advance(2)
    await ledger.burn(credential_key("v2", "new"), 60, now_ms=_ms(clock))
    assert len(ledger) == 1


async def test_a_grant_comes_back_with_the_burn_until_it_expires(clock: FakeClock) -> None:
    """What the credential service recorded is what the upload API reads, for the grant's
    lifetime only."""
    ledger = MemoryLedger(clock)
    key = credential_key("v1", "public_x", "token-1")
    await ledger.record(key, b'{"grant": 1}', 60, now_ms=_ms(clock))
    assert (await ledger.burn(key, 60, now_ms=_ms(clock))).grant == b'{"grant": 1}'
    late = credential_key("v1", "public_x", "token-2")
    await ledger.record(late, b'{"grant": 2}', 60, now_ms=_ms(clock))
    clock.advance(61)
    assert (await ledger.burn(late, 60, now_ms=_ms(clock))).grant is None


async def test_the_epoch_is_when_the_ledger_began(clock: FakeClock) -> None:
    """A new ledger (a restarted process) remembers nothing from before it began, and says so."""
    clock.advance(0.25)
    ledger = MemoryLedger(clock)
    burn = await ledger.burn(credential_key("v2", "t"), 60, now_ms=_ms(clock))
    assert burn.epoch_ms == START * 1000 + 250


def test_keys_do_not_contain_the_credential() -> None:
    """The ledger holds hashes, never a usable credential."""
    key = credential_key("v1", "public_x", "secret-token")
    assert "secret-token" not in key
    assert key.startswith("v1:")
