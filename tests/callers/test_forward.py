"""Forward auth for cookie sessions, against a real session-check server on loopback (one
answer hangs past the timeout), and the CORS allowlist browsers need for it."""

import base64
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from app.core.settings import CallersConfig, ForwardAuthConfig, ProfileConfig, Settings
from tests.support.apps import FakeClock, in_process
from tests.support.upstreams import Upstream

pytestmark = pytest.mark.anyio

FILE = {"fileName": "me.png", "fileSize": 100, "mimeType": "image/png"}
APP = "http://app.test"


def forward_settings(
    make: Callable[..., Settings], upstream: Upstream, **forward: object
) -> Settings:
    return make(
        dev_mode=False,
        callers=CallersConfig(
            forward=ForwardAuthConfig(url=upstream.url + "/session", timeout=1, **forward)
        ),
        profiles={"avatar": ProfileConfig(folder="/users/{caller}", allow_v1=True)},
        default_profile="avatar",
        cors_origins=[APP],
    )


@pytest.fixture
async def service(
    make_settings: Callable[..., Settings], upstream: Upstream, clock: FakeClock
) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process(forward_settings(make_settings, upstream), clock) as http:
        yield http


def cookie(session: str) -> dict[str, str]:
    return {"Cookie": f"session={session}"}


async def test_a_signed_in_session_is_the_caller(
    service: httpx.AsyncClient, upstream: Upstream
) -> None:
    """The app's 2xx names the caller; only Cookie and Authorization were forwarded."""
    response = await service.post(
        "/v2/token", json=FILE, headers={**cookie("alice"), "X-Private-Thing": "do-not-send"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["fields"]["folder"] == "/users/alice"
    forwarded = upstream.requests[-1]
    assert forwarded["cookie"] == "session=alice"
    assert "X-Private-Thing" not in forwarded["other"]


async def test_caller_from_a_json_field(
    make_settings: Callable[..., Settings], upstream: Upstream, clock: FakeClock
) -> None:
    """The caller id may come from a field of the app's JSON answer instead."""
    settings = forward_settings(make_settings, upstream, caller_field="id")
    async with in_process(settings, clock) as http:
        response = await http.post("/v2/token", json=FILE, headers=cookie("bob-json"))
    assert response.json()["fields"]["folder"] == "/users/bob"


@pytest.mark.parametrize(
    ("session", "status", "slug"),
    [
        ("wrong", 401, "unauthenticated"),
        ("broken", 502, "auth-upstream-error"),
        ("nobody", 502, "auth-upstream-error"),
    ],
)
async def test_refusals_and_upstream_failures(
    service: httpx.AsyncClient, session: str, status: int, slug: str
) -> None:
    """Not signed in: 401. The app erring or naming nobody: 502. Never an open door."""
    response = await service.get("/v1/auth", headers=cookie(session))
    assert response.status_code == status
    assert response.json()["type"] == f"/problems/{slug}"


async def test_a_hanging_session_check_times_out(service: httpx.AsyncClient) -> None:
    """An app that hangs past the timeout gives a 503 with Retry-After, in about the timeout."""
    started = time.monotonic()
    response = await service.get("/v1/auth", headers=cookie("slow"))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert time.monotonic() - started < 2.5


async def test_nothing_to_forward_is_401_without_asking(
    service: httpx.AsyncClient, upstream: Upstream
) -> None:
    """No cookie and no Authorization: refused here, the app is not bothered."""
    response = await service.get("/v1/auth")
    assert response.status_code == 401
    assert upstream.requests == []


async def test_cors_preflight_allowlist(service: httpx.AsyncClient, upstream: Upstream) -> None:
    """Preflights are answered without authentication: the allowed origin gets the headers
    (with credentials, for cookies); another origin gets none."""
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    allowed = await service.options("/v2/token", headers={"Origin": APP, **preflight})
    other = await service.options("/v2/token", headers={"Origin": "http://evil.test", **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == APP
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "access-control-allow-origin" not in other.headers
    assert upstream.requests == []
    real = await service.post("/v2/token", json=FILE, headers={"Origin": APP, **cookie("alice")})
    assert real.headers["access-control-allow-origin"] == APP


def test_wildcard_origin_is_refused_with_cookie_sessions(
    make_settings: Callable[..., Settings],
) -> None:
    """'*' cannot go with cookie sessions: the configuration does not load."""
    from pydantic import ValidationError

    from app.core.settings import describe_error

    with pytest.raises(ValidationError) as info:
        make_settings(
            callers=CallersConfig(forward=ForwardAuthConfig(url="http://app:3000/session")),
            cors_origins=["*"],
        )
    assert "cannot be used with cookie sessions" in describe_error(info.value)


@pytest.mark.parametrize(
    "authorization",
    [
        "Token uak_" + "k" * 43,
        "uak_" + "k" * 43,
        "Basic " + base64.b64encode(b"uak_" + b"k" * 43 + b":").decode(),
        "Basic " + base64.b64encode(b"user:uak_" + b"k" * 43).decode(),
        "Bearer uak_" + "k" * 43,
    ],
)
async def test_an_api_key_is_never_passed_on(
    service: httpx.AsyncClient, upstream: Upstream, authorization: str
) -> None:
    """Whatever the scheme, an Authorization header holding an API key is refused outright
    and never reaches the app's session check."""
    response = await service.post(
        "/v2/token", json=FILE, headers={**cookie("alice"), "Authorization": authorization}
    )
    assert response.status_code == 401
    assert all("uak_" not in r["authorization"] for r in upstream.requests)
    assert "uak_" not in response.text
