"""Forward auth for cookie sessions, against a real session-check server on loopback (one
answer hangs past the timeout), and the CORS allowlist browsers need for it."""

import base64
import time
from collections.abc import AsyncIterator, Callable
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.settings import CallersConfig, ForwardAuthConfig, ProfileConfig, Settings
from app.credential_service.callers.api_keys import carries_api_key, new_api_key
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
    assert response.json()["fields"]["folder"] == "/users/session-alice"
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
    assert response.json()["fields"]["folder"] == "/users/session-bob"


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


def _b64(data: bytes, *, urlsafe: bool, padded: bool) -> str:
    encoded = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(data).decode()
    return encoded if padded else encoded.rstrip("=")


@st.composite
def key_spellings(draw: st.DrawFn) -> tuple[str, str]:
    """An API key, and an Authorization value that carries it: any scheme or none, any case,
    separator, quoting, list position, percent- or base64-encoding (whole, or as Basic's or a
    Digest's user name)."""
    key = new_api_key()
    cased = draw(st.sampled_from([key, key.upper(), "U" + key[1:], "uAk_" + key[4:]]))
    carried = draw(
        st.sampled_from(
            [
                cased,
                f'"{cased}"',
                "x" + cased,
                quote(cased, safe=""),
                cased.replace("_", "%5F"),
                _b64(cased.encode(), urlsafe=draw(st.booleans()), padded=draw(st.booleans())),
                _b64(
                    draw(st.sampled_from([b"", b"user:", b"x"])) + cased.encode() + b":pw",
                    urlsafe=draw(st.booleans()),
                    padded=draw(st.booleans()),
                ),
                f'username="{cased}", realm="app", nonce="n", response="r"',
            ]
        )
    )
    scheme = draw(st.sampled_from(["Bearer", "bearer", "BEARER", "Basic", "Token", "Digest", ""]))
    separator = draw(st.sampled_from([" ", "\t", "  ", " \t"]))
    value = f"{scheme}{separator}{carried}" if scheme else carried
    if draw(st.booleans()):
        value = draw(st.sampled_from([f"Bearer abc, {value}", f"{value}, Bearer abc"]))
    return key, value


@given(key_spellings())
def test_every_spelling_of_an_api_key_is_recognised(spelled: tuple[str, str]) -> None:
    """However the header spells a key, it is recognised as carrying one."""
    _, value = spelled
    assert carries_api_key(value)


@pytest.mark.parametrize(
    "value",
    [
        "Bearer "
        + ".".join(["eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0", "eyJzdWIiOiJhbGljZSJ9", "c2ln"]),
        "Basic " + base64.b64encode(b"alice:correct horse battery staple").decode(),
        "Bearer session-7f3a9c0e2b",
        'Digest username="alice", realm="app", nonce="dcd98b7102dd2f0e", response="6629fae4"',
    ],
)
def test_other_credentials_are_not_taken_for_api_keys(value: str) -> None:
    """A JWT, a password, a session token and a Digest answer are not API keys."""
    assert not carries_api_key(value)


@pytest.fixture
async def forwarding_authorization(
    make_settings: Callable[..., Settings], upstream: Upstream, clock: FakeClock
) -> AsyncIterator[httpx.AsyncClient]:
    """Forward auth that also sends Authorization (the operator opted in)."""
    settings = forward_settings(make_settings, upstream, forward_authorization=True)
    async with in_process(settings, clock) as http:
        yield http


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key_spellings())
async def test_a_spelled_api_key_never_reaches_the_session_check(
    forwarding_authorization: httpx.AsyncClient, upstream: Upstream, spelled: tuple[str, str]
) -> None:
    """With Authorization forwarded, a header carrying a key in any spelling is refused with 401
    and the session check never sees it (the cookie's user is not taken instead)."""
    key, value = spelled
    before = len(upstream.requests)
    response = await forwarding_authorization.post(
        "/v2/token", json=FILE, headers={**cookie("alice"), "Authorization": value}
    )
    assert response.status_code == 401
    assert upstream.requests[before:] == []
    secret = key.removeprefix("uak_")
    assert secret not in response.text


async def test_authorization_is_forwarded_only_when_the_operator_opts_in(
    service: httpx.AsyncClient,
    forwarding_authorization: httpx.AsyncClient,
    upstream: Upstream,
) -> None:
    """By default the session check gets the Cookie alone; with `forward_authorization` it
    also gets the Authorization header."""
    headers = {**cookie("alice"), "Authorization": "Bearer session-7f3a9c0e2b"}
    assert (await service.post("/v2/token", json=FILE, headers=headers)).status_code == 200
    assert upstream.requests[-1]["authorization"] == ""
    answer = await forwarding_authorization.post("/v2/token", json=FILE, headers=headers)
    assert answer.status_code == 200
    assert upstream.requests[-1]["authorization"] == "Bearer session-7f3a9c0e2b"
