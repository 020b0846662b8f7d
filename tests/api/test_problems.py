"""Every refusal is an RFC 9457 problem with a stable type, never a 5xx, never an echo."""

import asyncio
import json
from typing import Any

import httpx
import pytest

from app.core import credentials
from app.core.settings import Settings
from app.credential_service.app import create_app
from tests.support.apps import FakeClock, asgi_client, caller_headers

pytestmark = pytest.mark.anyio

PROBLEM = "application/problem+json"
SNEAKY = "<script>SNEAKY-INPUT-7f3a</script>"


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"] == f"/problems/{slug}"
    assert body["status"] == status
    assert body["title"]
    assert SNEAKY not in response.text
    assert "SNEAKY" not in response.text
    return body


def req(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"fileName": "cat.png", "fileSize": 100, "mimeType": "image/png"}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


@pytest.mark.parametrize(
    ("body", "status", "slug"),
    [
        (req(profile="SNEAKY"), 422, "unknown-profile"),
        (req(fileName="SNEAKY.exe"), 422, "type-not-allowed"),
        (req(fileSize=25 * 2**20 + 1), 422, "file-too-large"),
        (req(mimeType="text/html"), 422, "type-mismatch"),
        (req(fileName="../SNEAKY.png"), 422, "invalid-file-name"),
        (req(fileName="SNEAKY\x07.png"), 422, "invalid-file-name"),
        (req(fileName="SNEAKY"), 422, "invalid-file-name"),
        (req(folder="/SNEAKY INPUT"), 422, "invalid-folder"),
        (req(fileSize=0), 422, "invalid-request"),
        (req(fileSize="SNEAKY"), 422, "invalid-request"),
        (req(mimeType=None), 422, "invalid-request"),
        (req(SNEAKY=1), 422, "invalid-request"),
        (
            {"uploadPayload": {"fileName": "a.png", "webhookUrl": SNEAKY}, "expire": 60},
            422,
            "field-not-allowed",
        ),
        (
            {"uploadPayload": {"fileName": "a.png", SNEAKY: "x"}, "expire": 60},
            422,
            "field-not-allowed",
        ),
        ({"uploadPayload": {"fileName": "a.png"}, "expire": 3600}, 422, "invalid-request"),
        (
            {"uploadPayload": {"fileName": "a.png"}, "expire": 60, "publicKey": "SNEAKY"},
            422,
            "unknown-key",
        ),
        ([SNEAKY], 422, "invalid-request"),
    ],
)
async def test_v2_refusals_have_stable_types(
    client: httpx.AsyncClient, body: Any, status: int, slug: str
) -> None:
    """Each bad request maps to its documented problem type, without echoing input."""
    assert_problem(await client.post("/v2/token", json=body), status, slug)


async def test_validation_problem_lists_fields_not_values(client: httpx.AsyncClient) -> None:
    """A 422 says which field failed and why, but never what was sent."""
    body = assert_problem(
        await client.post("/v2/token", json=req(fileSize=SNEAKY)), 422, "invalid-request"
    )
    assert body["errors"][0]["loc"] == ["body", "file", "fileSize"]
    assert "input" not in body["errors"][0]


async def test_malformed_json(client: httpx.AsyncClient) -> None:
    """A body that is not JSON is 400 malformed-json."""
    response = await client.post(
        "/v2/token", content=b'{"fileName": SNEAKY', headers={"content-type": "application/json"}
    )
    assert_problem(response, 400, "malformed-json")


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
async def test_wrong_content_type(client: httpx.AsyncClient, content_type: str) -> None:
    """A body that is not declared as JSON is 415 unsupported-media-type."""
    response = await client.post(
        "/v2/token", content=b"fileName=SNEAKY", headers={"content-type": content_type}
    )
    assert_problem(response, 415, "unsupported-media-type")


async def test_body_too_large(client: httpx.AsyncClient) -> None:
    """A JSON body over the limit is 413, declared or streamed."""
    big = b'{"fileName": "' + b"a" * 20_000 + b'"}'
    assert_problem(
        await client.post("/v2/token", content=big, headers={"content-type": "application/json"}),
        413,
        "body-too-large",
    )

    async def chunks() -> Any:
        for _ in range(40):
            yield b" " * 1000

    assert_problem(
        await client.post(
            "/v2/token", content=chunks(), headers={"content-type": "application/json"}
        ),
        413,
        "body-too-large",
    )


async def test_unknown_path_and_method(client: httpx.AsyncClient) -> None:
    """Routing errors are problems too."""
    assert_problem(await client.get("/SNEAKY"), 404, "not-found")
    body = assert_problem(await client.delete("/v1/auth"), 405, "method-not-allowed")
    assert body["title"]


async def test_request_id_is_propagated(client: httpx.AsyncClient) -> None:
    """A sane X-Request-ID is echoed and put in problems; a hostile one is replaced."""
    response = await client.get("/nope", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert response.json()["request_id"] == "abc-123"
    replaced = await client.get("/nope", headers={"X-Request-ID": SNEAKY})
    assert SNEAKY not in replaced.headers["x-request-id"]


async def test_health_endpoints(client: httpx.AsyncClient) -> None:
    """/healthz and /readyz answer without authentication."""
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready", "checks": {"keys": "ok"}})


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast path", "FastAPI route"])
async def test_a_bug_answers_a_500_problem_with_its_request_id(
    settings: Settings,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fast_path: bool,
) -> None:
    """An unexpected exception is a 500 internal-error problem that says nothing of the
    exception, carries the request's X-Request-ID and is in the access log with status 500."""

    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("SNEAKY internal detail")

    monkeypatch.setattr(credentials, "issue_v1", broken)  # what both fronts' v1 calls
    app = create_app(settings, clock=clock, fast_path=fast_path)
    async with asgi_client(app, "http://test", raise_app_exceptions=False) as http:
        response = await http.get(
            "/v1/auth", headers={"X-Request-ID": "bug-1", **caller_headers(settings)}
        )
        await asyncio.sleep(0)  # request lines go out at the end of the event loop's turn
    assert_problem(response, 500, "internal-error")
    assert response.headers["x-request-id"] == "bug-1"
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "{" in line]
    access = [d for d in lines if d.get("logger") == "upload_auth.access"]
    assert [(d["request_id"], d["status"]) for d in access] == [("bug-1", 500)]
