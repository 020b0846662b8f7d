"""The private key never leaves the process: not in a response, a header, a log line or the
OpenAPI document, whatever is sent, even when a client sends the key itself."""

import asyncio

import httpx
import pytest

pytestmark = pytest.mark.anyio


async def test_private_key_appears_nowhere(
    client: httpx.AsyncClient,
    private_key: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A barrage of good and bad requests, some carrying the key, never shows it back."""
    key = private_key
    responses = [
        await client.get("/v1/auth"),
        await client.get("/auth", params={"publicKey": key}),
        await client.get("/v1/auth", headers={"Authorization": f"Bearer {key}", "Cookie": key}),
        await client.post(
            "/v2/token", json={"fileName": "a.png", "fileSize": 1, "mimeType": "image/png"}
        ),
        await client.post(
            "/v2/token", json={"fileName": key, "fileSize": 1, "mimeType": "image/png"}
        ),
        await client.post(
            "/v2/token",
            json={"fileName": f"{key}.png", "fileSize": key, "mimeType": key, "profile": key},
        ),
        await client.post(
            "/v2/token",
            json={"uploadPayload": {"fileName": "a.png", key: key}, "expire": 60, "publicKey": key},
        ),
        await client.post("/v2/token", json={key: key}),
        await client.post(
            "/v2/token", content=key.encode(), headers={"content-type": "application/json"}
        ),
        await client.post("/v2/token", content=key.encode(), headers={"content-type": key}),
        await client.get(f"/{key}"),
        await client.get("/openapi.json"),
        await client.get("/docs"),
    ]
    assert {r.status_code for r in responses} >= {200, 400, 404, 415, 422}
    assert all(r.status_code < 500 for r in responses)
    for response in responses:
        assert key not in response.text
        assert all(key not in value for value in response.headers.values())
    await asyncio.sleep(0)  # request lines go out at the end of the event loop's turn
    captured = capsys.readouterr()
    assert "request" in captured.out  # the access lines were written, and looked at
    assert key not in captured.out + captured.err
    assert key not in caplog.text
