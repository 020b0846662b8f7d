"""The fast path answers exactly as the FastAPI routes do, request for request."""

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.core.settings import ApiKeyConfig, CallersConfig, ProfileConfig, Settings
from app.credential_service.app import create_app
from tests.support.apps import FakeClock, asgi_client

pytestmark = pytest.mark.anyio

KEY = "uak_" + "f" * 43
JSON = {"content-type": "application/json"}
AUTH = {"Authorization": f"Bearer {KEY}"}
AUTH_JSON = {**AUTH, **JSON}
FILE = {"fileName": "cat.png", "fileSize": 100, "mimeType": "image/png"}

REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/v1/auth", {"headers": AUTH}),
    ("GET", "/auth", {"headers": AUTH, "params": {"t": "0.1"}}),
    ("GET", "/v1/auth", {"headers": AUTH, "params": {"publicKey": "public_nope"}}),
    ("GET", "/v1/auth", {"headers": AUTH, "params": {"publicKey": "p" * 200}}),
    ("GET", "/v1/auth", {"headers": AUTH, "params": {"publicKey": ""}}),
    ("GET", "/v1/auth", {"headers": AUTH, "params": {"profile": "avatar"}}),
    ("GET", "/v1/auth", {"headers": AUTH, "params": {"profile": "secret"}}),
    ("GET", "/v1/auth", {"headers": AUTH, "params": {"profile": "v1off"}}),
    ("GET", "/v1/auth", {"headers": AUTH, "params": {"profile": "no-such"}}),
    ("GET", "/v1/auth", {"headers": AUTH, "params": {"profile": "bad name!"}}),
    ("GET", "/v1/auth", {"headers": AUTH, "params": {"profile": ""}}),
    ("GET", "/v1/auth", {"headers": AUTH, "params": [("profile", "x"), ("profile", "avatar")]}),
    ("GET", "/v1/auth", {}),
    ("GET", "/v1/auth", {"headers": {"Authorization": "Bearer uak_wrong"}}),
    ("POST", "/v2/token", {"headers": AUTH, "json": FILE}),
    ("POST", "/v2/token", {"headers": AUTH, "json": {**FILE, "profile": "avatar"}}),
    ("POST", "/v2/token", {"headers": AUTH, "json": {**FILE, "profile": "secret"}}),
    ("POST", "/v2/token", {"headers": AUTH, "json": {**FILE, "fileSize": 10**9}}),
    ("POST", "/v2/token", {"headers": AUTH, "json": {**FILE, "fileName": "../x.png"}}),
    ("POST", "/v2/token", {"headers": AUTH, "json": {**FILE, "mimeType": "text/html"}}),
    ("POST", "/v2/token", {"headers": AUTH, "json": {**FILE, "extra": 1}}),
    ("POST", "/v2/token", {"headers": AUTH, "json": {"fileName": "a.png"}}),
    ("POST", "/v2/token", {"headers": AUTH, "json": [1, 2]}),
    (
        "POST",
        "/v2/token",
        {"headers": AUTH, "json": {"uploadPayload": {"fileName": "a.png"}, "expire": 60}},
    ),
    (
        "POST",
        "/v2/token",
        {
            "headers": AUTH,
            "json": {"uploadPayload": {"fileName": "a.png", "webhookUrl": "x"}, "expire": 60},
        },
    ),
    ("POST", "/v2/token", {"headers": {**AUTH, **JSON}, "content": b"{broken"}),
    ("POST", "/v2/token", {"headers": {**AUTH, "content-type": "text/plain"}, "content": b"x"}),
    ("POST", "/v2/token", {"headers": {**AUTH, **JSON}, "content": b""}),
    ("POST", "/v2/token", {"headers": {**AUTH, **JSON}, "content": b"{}" + b" " * 20000}),
    ("POST", "/v2/token", {"json": FILE}),
    # the body's type is checked before the caller is asked for: 415 and 400 come before 401
    ("POST", "/v2/token", {"headers": AUTH, "content": b'{"fileName": "a.png"}'}),
    ("POST", "/v2/token", {"content": b'{"fileName": "a.png"}'}),
    ("POST", "/v2/token", {"headers": {"content-type": "text/plain"}, "content": b"{}"}),
    ("POST", "/v2/token", {"headers": JSON, "content": b"{broken"}),
    ("POST", "/v2/token", {"content": b"{broken"}),
    ("POST", "/v2/token", {"headers": AUTH}),
    # nested deeper than Python's JSON parser goes: a 400, never a 500
    ("POST", "/v2/token", {"headers": AUTH_JSON, "content": b"[" * 6000 + b"]" * 6000}),
    (
        "POST",
        "/v2/token",
        {
            "headers": AUTH_JSON,
            "content": b'{"uploadPayload": {"fileName": "a.png", "customMetadata": "'
            + b"[" * 6000
            + b"]" * 6000
            + b'"}, "expire": 60}',
        },
    ),
    # JSON corners where parsers differ: the fast path must still answer as the route does.
    *(
        ("POST", "/v2/token", {"headers": AUTH_JSON, "content": body})
        for body in (
            b'{"fileName": "a.png", "fileName": "b.png", "fileSize": 1, "mimeType": "image/png"}',
            b'{"fileName": "a\\ud800.png", "fileSize": 1, "mimeType": "image/png"}',
            b'{"fileName": "caf\xe9.png", "fileSize": 1, "mimeType": "image/png"}',
            b'\xef\xbb\xbf{"fileName": "a.png", "fileSize": 1, "mimeType": "image/png"}',
            '{"fileName": "a.png", "fileSize": 1, "mimeType": "image/png"}'.encode("utf-16"),
            b'{"fileName": "a.png", "fileSize": true, "mimeType": "image/png"}',
            b'{"fileName": "a.png", "fileSize": "12", "mimeType": "image/png"}',
            b'{"fileName": "a.png", "fileSize": 1e2, "mimeType": "image/png"}',
            b'{"fileName": "a.png", "fileSize": 9007199254740993, "mimeType": "image/png"}',
            b'{"uploadPayload": {"fileName": "a.png", "description": NaN}, "expire": 60}',
            b'{"uploadPayload": {"fileName": "a.png", "description": 1e400}, "expire": 60}',
        )
    ),
]

RANDOM = {"token", "signature", "request_id", "nonce"}


def normalised(response: httpx.Response) -> tuple[int, str, str | None, Any]:
    body = response.json()
    if isinstance(body, dict):
        body = {k: ("<random>" if k in RANDOM else v) for k, v in body.items()}
    return (
        response.status_code,
        response.headers["content-type"],
        response.headers.get("cache-control"),
        body,
    )


@pytest.mark.parametrize("deployed", [{"dev_mode": False}, {"dev_mode": True}])
async def test_fast_path_equals_fastapi_routes(
    make_settings: Callable[..., Settings], clock: FakeClock, deployed: dict[str, Any]
) -> None:
    """Good and bad requests get the same status, headers and body from both fronts."""
    import hashlib

    settings = make_settings(
        callers=CallersConfig(
            api_keys=[
                ApiKeyConfig(
                    name="backend",
                    hash="sha256:" + hashlib.sha256(KEY.encode()).hexdigest(),
                    profiles=["default", "avatar", "v1off"],
                )
            ]
        ),
        profiles={
            "default": ProfileConfig(allow_v1=True),
            "avatar": ProfileConfig(types=["png"], allow_v1=True),
            "secret": ProfileConfig(allow_v1=True),
            "v1off": ProfileConfig(allow_v1=False),
        },
        **deployed,
    )
    answers = []
    for fast in (True, False):
        app = create_app(settings, clock=clock, fast_path=fast)
        async with asgi_client(app, "http://test") as http:
            answers.append(
                [
                    normalised(await http.request(method, url, **options))
                    for method, url, options in REQUESTS
                ]
            )
    for request, fast, reference in zip(REQUESTS, *answers, strict=True):
        assert fast == reference, request


async def test_body_limits_answer_alike_on_both_fronts(
    make_settings: Callable[..., Settings], clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fast path stands in front of the body limit and applies it itself: a body declared
    too large and one streamed (chunked) past the limit get the same answers, and the same
    audit events, as through the FastAPI routes behind ``BodyLimit``."""

    def chunked() -> Any:
        async def body() -> Any:
            yield b'{"fileName": "a.png", "fileSize": 1, '
            yield b" " * 20000
            yield b'"mimeType": "image/png"}'

        return body()

    answers, audits = [], []
    for fast in (True, False):
        app = create_app(make_settings(), clock=clock, fast_path=fast)
        async with asgi_client(app, "http://test") as http:
            declared = await http.post("/v2/token", headers=JSON, content=b"{}" + b" " * 20000)
            streamed = await http.post("/v2/token", headers=JSON, content=chunked())
            answers.append([normalised(declared), normalised(streamed)])
        audits.append(
            [
                {k: v for k, v in json.loads(line).items() if k not in ("ts", "request_id")}
                for line in capsys.readouterr().out.splitlines()
                if '"upload_auth.audit"' in line
            ]
        )
    assert answers[0] == answers[1]
    assert answers[0][0][0] == answers[0][1][0] == 413
    assert audits[0] == audits[1]
