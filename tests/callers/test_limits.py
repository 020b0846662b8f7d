"""Rate limits and byte quotas: trip at the configured count with 429 + Retry-After, reset,
separate budgets per caller and per version; Redis down falls back to process memory."""

from collections.abc import Callable
from typing import Any

import pytest

from app.core.settings import ApiKeyConfig, CallersConfig, ProfileConfig, Settings
from app.credential_service.callers.api_keys import hash_api_key, new_api_key
from tests.support.apps import FakeClock, in_process
from tests.support.servers import free_port

pytestmark = pytest.mark.anyio

FILE = {"fileName": "cat.png", "fileSize": 40 * 1024, "mimeType": "image/png"}


def limited(make: Callable[..., Settings], keys: list[str], **limits: Any) -> Settings:
    callers = CallersConfig(
        api_keys=[
            ApiKeyConfig(name=f"caller-{i}", hash=hash_api_key(k)) for i, k in enumerate(keys)
        ]
    )
    return make(
        dev_mode=False,
        callers=callers,
        profiles={"default": ProfileConfig(allow_v1=True)},
        **{"rate_limit_v1": None, "rate_limit_v2": None, "quota_v2": None, **limits},
    )


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_v1_limit_trips_with_retry_after(
    make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    """The 4th request of a 3/minute budget is a 429 problem with Retry-After; v2 and other
    callers have budgets of their own."""
    one, two = new_api_key(), new_api_key()
    settings = limited(
        make_settings, [one, two], rate_limit_v1="3/minute", rate_limit_v2="3/minute"
    )
    async with in_process(settings, clock) as http:
        statuses = [(await http.get("/v1/auth", headers=auth(one))).status_code for _ in range(3)]
        refused = await http.get("/v1/auth", headers=auth(one))
        other_caller = await http.get("/v1/auth", headers=auth(two))
        other_version = await http.post("/v2/token", json=FILE, headers=auth(one))
    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["type"] == "/problems/rate-limited"
    assert other_caller.status_code == 200
    assert other_version.status_code == 200


async def test_limits_reset(make_settings: Callable[..., Settings], clock: FakeClock) -> None:
    """After Retry-After seconds (of the service's clock) the caller may ask again."""
    key = new_api_key()
    async with in_process(limited(make_settings, [key], rate_limit_v1="2/second"), clock) as http:
        assert [(await http.get("/v1/auth", headers=auth(key))).status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]
        refused = await http.get("/v1/auth", headers=auth(key))
        assert refused.status_code == 429
        clock.advance(int(refused.headers["retry-after"]))
        assert (await http.get("/v1/auth", headers=auth(key))).status_code == 200


async def test_byte_quota_adds_up_declared_sizes(
    make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    """Declared sizes count against the quota; the request that would pass it is refused."""
    key = new_api_key()
    async with in_process(limited(make_settings, [key], quota_v2="100kb/hour"), clock) as http:
        first = await http.post("/v2/token", json=FILE, headers=auth(key))
        second = await http.post("/v2/token", json=FILE, headers=auth(key))
        third = await http.post("/v2/token", json=FILE, headers=auth(key))
        metrics = (await http.get("/metrics")).text
    assert [first.status_code, second.status_code, third.status_code] == [200, 200, 429]
    assert "bytes per" in third.json()["detail"]
    assert 'upload_auth_rate_limited_total{limit="bytes",version="v2"} 1.0' in metrics


async def test_redis_down_falls_back_to_process_memory(
    make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    """With Redis unreachable, credentials keep flowing and the limit still holds, per process."""
    key = new_api_key()
    settings = limited(
        make_settings,
        [key],
        rate_limit_v1="2/minute",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
    )
    async with in_process(settings, clock) as http:
        statuses = [(await http.get("/v1/auth", headers=auth(key))).status_code for _ in range(3)]
        metrics = (await http.get("/metrics")).text
    assert statuses == [200, 200, 429]
    assert "upload_auth_rate_limit_fallbacks_total 3.0" in metrics


async def test_development_callers_are_limited_per_address(
    make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    """Unauthenticated development callers share a budget per client address."""
    settings = make_settings(rate_limit_v1="2/minute")
    async with in_process(settings, clock) as http:
        statuses = [(await http.get("/v1/auth")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("rate_limit_v1", "lots"),
        ("rate_limit_v2", "0/minute"),
        ("quota_v2", "1gb"),
        ("quota_v2", "big/hour"),
    ],
)
def test_bad_limits_do_not_load(
    make_settings: Callable[..., Settings], setting: str, value: str
) -> None:
    """A limit that does not parse stops the configuration from loading."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        make_settings(**{setting: value})


def test_off_switches_a_limit_off(make_settings: Callable[..., Settings]) -> None:
    """TOML and environment variables have no null: "off" (or empty) means no limit."""
    settings = make_settings(rate_limit_v1="off", rate_limit_v2="", quota_v2="OFF")
    assert (settings.rate_limit_v1, settings.rate_limit_v2, settings.quota_v2) == (None, None, None)
