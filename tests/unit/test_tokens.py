"""The in-memory used-token store: once only, remembered until expiry, then forgotten."""

import pytest

from app.upload_api.tokens import MemoryTokenStore, token_key
from tests.conftest import FakeClock

pytestmark = pytest.mark.anyio


async def test_a_token_burns_once(clock: FakeClock) -> None:
    """The first burn wins; every later one is refused."""
    store = MemoryTokenStore(clock)
    key = token_key("v1", "public_x", "token-1")
    assert await store.burn(key, 60)
    assert not await store.burn(key, 60)
    assert await store.burn(token_key("v1", "public_y", "token-1"), 60)


async def test_burned_tokens_are_forgotten_after_their_ttl(clock: FakeClock) -> None:
    """Memory stays bounded: entries go once the credential could not pass anyway."""
    store = MemoryTokenStore(clock)
    for i in range(100):
        await store.burn(token_key("v2", str(i)), 60)
    clock.advance(59)
    assert not await store.burn(token_key("v2", "5"), 60)
    clock.advance(2)
    await store.burn(token_key("v2", "new"), 60)
    assert len(store) == 1


def test_keys_do_not_contain_the_token() -> None:
    """The store holds hashes, never a usable credential."""
    key = token_key("v1", "public_x", "secret-token")
    assert "secret-token" not in key
    assert key.startswith("upload-auth:used:v1:")
