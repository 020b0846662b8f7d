"""Fixtures for caller authentication: an upstream server, provider keys, API keys."""

from collections.abc import Iterator

import pytest

from app.credential_service.callers.api_keys import hash_api_key, new_api_key
from tests.support.upstreams import SigningKey, Upstream, make_key, upstream_server


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with upstream_server() as server:
        yield server


@pytest.fixture
def provider_keys() -> dict[str, SigningKey]:
    return {alg: make_key(f"kid-{alg}", alg) for alg in ("RS256", "ES256", "EdDSA")}


@pytest.fixture
def api_key() -> str:
    return new_api_key()


@pytest.fixture
def api_key_hash(api_key: str) -> str:
    return hash_api_key(api_key)
