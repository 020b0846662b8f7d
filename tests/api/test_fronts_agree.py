"""Both fronts of the credential routes, driven with generated requests, agree on everything a
user or an operator can see: the answers, the audit events, the access lines and the metrics.

The fast path (``app/fastpath.py``) serves the credential routes beside the FastAPI routes it
reads them from. Here both serve the same generated sequences of good and bad requests, in
production mode, with callers authenticated by API key or by a real session-check upstream
(one of whose sessions makes it fail), and with small rate limits and byte quota in force.
"""

import asyncio
import json
import re
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.logs import flush_lines
from app.core.settings import (
    ApiKeyConfig,
    CallersConfig,
    ForwardAuthConfig,
    ProfileConfig,
    Settings,
)
from app.credential_service.app import create_app
from app.credential_service.callers.api_keys import hash_api_key
from tests.support.apps import FakeClock, asgi_client
from tests.support.upstreams import Upstream, upstream_server

KEY = "uak_" + "k" * 43
PUBLIC = "<public key>"  # replaced by the test's own public key

#: How a request says who it is: an API key, a session the upstream knows (or fails on), none.
AUTH: dict[str, dict[str, str]] = {
    "api key": {"Authorization": f"Bearer {KEY}"},
    "wrong api key": {"Authorization": "Bearer uak_" + "w" * 43},
    "malformed bearer": {"Authorization": "Bearer"},
    "session alice": {"Cookie": "session=alice"},
    "session, upstream fails": {"Cookie": "session=broken"},
    "session, no caller named": {"Cookie": "session=nobody"},
    "session unknown": {"Cookie": "session=mallory"},
    "nothing": {},
}
CONTENT_TYPES = (
    "application/json",
    "application/json; charset=utf-8",
    "application/problem+json",
    "text/plain",
    "multipart/form-data; boundary=x",
    None,
)
#: Mostly the API key, so that most requests reach the policy and the limits.
auths = st.one_of(st.just("api key"), st.sampled_from(list(AUTH)))
PROFILES = ("default", "avatar", "v1off", "secret", "no-such", "bad name!", "", "x" * 70)

texts = st.text(max_size=40)
names = st.one_of(
    st.sampled_from(["cat.png", "clip.mp4", "a.exe", "../x.png", "noext", "a" * 300 + ".png"]),
    texts,
)
query_values = st.one_of(st.sampled_from([*PROFILES, PUBLIC, "p" * 200]), texts)
queries = st.dictionaries(
    st.sampled_from(["publicKey", "profile", "t", "other"]), query_values, max_size=3
)
file_bodies = st.fixed_dictionaries(
    {
        "fileName": names,
        "fileSize": st.one_of(st.integers(-1, 30 * 1024 * 1024), st.just(2**60)),
        "mimeType": st.sampled_from(["image/png", "video/mp4", "text/html", ""]),
    },
    optional={
        "profile": st.sampled_from(PROFILES),
        "folder": st.sampled_from(["/", "/avatars", "a b", "/" + "d/" * 60]),
        "extra": st.integers(),
    },
)
payload_bodies = st.fixed_dictionaries(
    {
        "uploadPayload": st.dictionaries(
            st.sampled_from(["fileName", "folder", "tags", "webhookUrl", "customMetadata"]),
            st.one_of(names, st.booleans(), st.integers()),
            max_size=3,
        ),
        "expire": st.integers(-5, 4000),
    },
    optional={"publicKey": st.sampled_from([PUBLIC, "public_nope"]), "profile": st.just("avatar")},
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), texts),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)
url_bodies = st.fixed_dictionaries(
    {
        "path": st.one_of(
            st.sampled_from(
                [
                    "/avatars/backend/cat.png",
                    "/avatars/alice/cat.png",
                    "/cat.png",
                    "/avatars/backend/a b.png",
                    "/avatars/backend/x.exe",
                    "/avatars/backend/../cat.png",
                ]
            ),
            texts,
        ),
    },
    optional={
        "expiresIn": st.integers(-5, 10**6),
        "profile": st.sampled_from(PROFILES),
        "extra": st.integers(),
    },
)
bodies = st.one_of(
    url_bodies.map(lambda b: json.dumps(b).encode()),
    file_bodies.map(lambda b: json.dumps(b).encode()),
    payload_bodies.map(lambda b: json.dumps(b).encode()),
    json_values.map(lambda b: json.dumps(b).encode()),
    st.binary(max_size=40),
)
requests = st.one_of(
    st.tuples(
        st.sampled_from(["/v1/auth", "/auth"]),
        st.just("GET"),
        auths,
        queries,
        st.none(),
        st.none(),
    ),
    st.tuples(
        st.sampled_from(["/v2/token", "/v1/signed-url"]),
        st.just("POST"),
        auths,
        st.just({}),
        bodies,
        st.sampled_from(CONTENT_TYPES),
    ),
    # the wrong method on a credential path: 405 from both
    st.tuples(
        st.sampled_from(["/v1/auth", "/v2/token"]),
        st.sampled_from(["PUT", "DELETE"]),
        auths,
        st.just({}),
        st.none(),
        st.none(),
    ),
)

_RANDOM = {"token", "signature"}
_TIMING = re.compile(r"_(bucket|sum|created)\b")


def _settings(public_key: str, private_key: str, upstream: Upstream) -> Settings:
    return Settings(
        public_key=public_key,
        private_key=private_key,
        log_format="json",
        callers=CallersConfig(
            api_keys=[
                ApiKeyConfig(
                    name="backend",
                    hash=hash_api_key(KEY),
                    profiles=["default", "avatar", "v1off"],
                )
            ],
            forward=ForwardAuthConfig(url=upstream.url + "/session", timeout=1.0),
        ),
        profiles={
            "default": ProfileConfig(allow_v1=True),
            "avatar": ProfileConfig(types=["png"], allow_v1=True, folder="/avatars/{caller}"),
            "secret": ProfileConfig(allow_v1=True),
            "v1off": ProfileConfig(allow_v1=False),
        },
        rate_limit_v1="3/minute",
        rate_limit_urls="3/minute",
        url_endpoint="https://files.test/files",
        rate_limit_v2="4/minute",
        quota_v2="200mb/hour",
    )


def _answer(response: httpx.Response) -> tuple[Any, ...]:
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if isinstance(body, dict):
        body = {k: "<random>" if k in _RANDOM else v for k, v in body.items()}
    headers = ("content-type", "cache-control", "retry-after", "www-authenticate", "allow")
    return (response.status_code, body, {h: response.headers.get(h) for h in headers})


def _log_lines(out: str, logger: str, drop: set[str]) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in line.items() if k not in drop}
        for line in map(json.loads, out.splitlines())
        if line.get("logger") == logger
    ]


def _counters(metrics: str) -> list[str]:
    """Every sample but the timing ones (durations differ between any two runs)."""
    return [
        line
        for line in metrics.splitlines()
        if not line.startswith("#") and not _TIMING.search(line)
    ]


async def _run(
    app_settings: Settings, fast: bool, sequence: list[tuple[Any, ...]], public_key: str
) -> tuple[list[Any], list[str]]:
    app = create_app(app_settings, clock=FakeClock(), fast_path=fast)
    answers = []
    async with asgi_client(app, "http://test") as http:
        for number, (path, method, auth, query, body, content_type) in enumerate(sequence):
            headers = {**AUTH[auth], "X-Request-ID": f"request-{number}"}
            if content_type is not None:
                headers["Content-Type"] = content_type
            params = {k: public_key if v == PUBLIC else v for k, v in query.items()}
            content = body.replace(PUBLIC.encode(), public_key.encode()) if body else body
            response = await http.request(
                method, path, headers=headers, params=params, content=content
            )
            answers.append(_answer(response))
        metrics = (await http.get("/metrics", headers={"X-Request-ID": "metrics"})).text
    return answers, _counters(metrics)


@pytest.fixture(scope="module")
def upstream() -> Any:
    with upstream_server() as server:
        yield server


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=st.lists(requests, min_size=1, max_size=8))
def test_both_fronts_answer_audit_log_and_count_alike(
    sequence: list[tuple[Any, ...]],
    upstream: Upstream,
    public_key: str,
    private_key: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """For any sequence of requests: the same statuses, bodies and headers, the same audit
    events, the same access lines (bar durations) and the same metrics, from both fronts."""
    app_settings = _settings(public_key, private_key, upstream)
    seen: list[Any] = []
    for fast in (True, False):
        capsys.readouterr()
        answers, metrics = asyncio.run(_run(app_settings, fast, sequence, public_key))
        flush_lines()
        out = capsys.readouterr().out
        seen.append(
            {
                "answers": answers,
                "audit": _log_lines(out, "upload_auth.audit", {"ts"}),
                "access": _log_lines(out, "upload_auth.access", {"ts", "duration_ms"}),
                "metrics": metrics,
            }
        )
    fast, reference = seen
    for part in ("answers", "audit", "access", "metrics"):
        assert fast[part] == reference[part], part
    assert len(fast["access"]) == len(sequence) + 1  # every request, and the scrape


def test_the_property_sees_refusals_and_credentials(
    public_key: str, private_key: str, upstream: Upstream
) -> None:
    """The settings above do give credentials, refusals of every kind and upstream failures
    (else the property would compare nothing interesting)."""
    sequence = [
        ("/v1/auth", "GET", "api key", {}, None, None),
        ("/v1/auth", "GET", "session alice", {"profile": "avatar"}, None, None),
        ("/v1/auth", "GET", "session, upstream fails", {}, None, None),
        ("/v1/auth", "GET", "api key", {"profile": "v1off"}, None, None),
        ("/v1/auth", "GET", "api key", {}, None, None),
        ("/v1/auth", "GET", "api key", {}, None, None),  # the fourth in a minute: 429
        (
            "/v2/token",
            "POST",
            "api key",
            {},
            b'{"fileName": "cat.png", "fileSize": 10, "mimeType": "image/png"}',
            "application/json",
        ),
    ]
    app_settings = _settings(public_key, private_key, upstream)
    answers, metrics = asyncio.run(_run(app_settings, True, sequence, public_key))
    assert [a[0] for a in answers] == [200, 200, 502, 403, 200, 429, 200]
    counted = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in metrics}
    refused = "upload_auth_credentials_refused_total{{profile={!r},reason={!r},version={!r}}}"
    assert counted[refused.format("none", "auth-upstream-error", "v1").replace("'", '"')] == 1
    assert counted[refused.format("none", "rate-limited", "v1").replace("'", '"')] == 1
    assert counted['upload_auth_forward_auth_total{outcome="error"}'] == 1


@pytest.mark.parametrize("dev_mode", [False, True])
def test_the_fast_path_serves_every_credential_route_of_the_app(
    public_key: str, private_key: str, upstream: Upstream, dev_mode: bool
) -> None:
    """The fast path's table is every route of the app marked as a credential route (and
    only those), read from the routes: an empty or partial table would leave the property
    above comparing FastAPI with itself."""
    from fastapi.routing import APIRoute, iter_route_contexts

    from app.credential_service.dependencies import issues_of
    from app.credential_service.fastpath import FastPath

    app_settings = _settings(public_key, private_key, upstream)
    app = create_app(app_settings.model_copy(update={"dev_mode": dev_mode}))
    layer = app.build_middleware_stack()
    while not isinstance(layer, FastPath):
        layer = layer.app  # type: ignore[attr-defined]
    marked = {
        (method, context.path)
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute) and issues_of(context.original_route)
        for method in context.original_route.methods or ()
    }
    assert (
        set(layer.routes)
        == marked
        == {
            ("GET", "/v1/auth"),
            ("GET", "/auth"),
            ("POST", "/v2/token"),
            ("POST", "/v1/signed-url"),
        }
    )
