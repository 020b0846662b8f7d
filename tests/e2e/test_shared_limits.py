"""Two credential-service processes on one redis-server draw on one rate-limit budget."""

import json
from pathlib import Path

import httpx
import pytest

from app.credential_service.callers.api_keys import hash_api_key, new_api_key
from tests.support.apps import new_private_key, new_public_key
from tests.support.servers import clean_env, redis_server, running

pytestmark = pytest.mark.e2e


def test_replicas_share_one_budget(tmp_path: Path) -> None:
    """5/minute across two replicas: the 6th request is refused, whichever replica gets it."""
    key = new_api_key()
    callers = json.dumps({"api_keys": [{"name": "backend", "hash": hash_api_key(key)}]})
    with redis_server(tmp_path / "redis.log") as redis_url:
        env = clean_env(
            IMAGEKIT_PUBLIC_KEY=new_public_key(),
            IMAGEKIT_PRIVATE_KEY=new_private_key(),
            UPLOAD_AUTH_CALLERS=callers,
            UPLOAD_AUTH_REDIS_URL=redis_url,
            UPLOAD_AUTH_RATE_LIMIT_V1="5/minute",
            UPLOAD_AUTH_PROFILES=json.dumps({"default": {"allow_v1": True}}),
        )
        with (
            running(["serve"], env=env, log=tmp_path / "a.log") as one,
            running(["serve"], env=env, log=tmp_path / "b.log") as two,
        ):
            auth = {"Authorization": f"Bearer {key}"}
            statuses = [
                httpx.get(server.url + "/v1/auth", headers=auth).status_code
                for server in (one, two, one, two, one, two, one)
            ]
            logs = one.output() + two.output()
    assert statuses == [200, 200, 200, 200, 200, 429, 429]
    assert key not in logs
    assert "rate-limit storage unavailable" not in logs
