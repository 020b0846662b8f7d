"""``POST /v1/signed-url``: a signed delivery URL for a private file the caller may read,
served by our upload API, byte for byte the official SDK's when the endpoint is ImageKit's;
the profile decides the folder, the longest lifetime and (with the limits) how often."""

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
from imagekitio import ImageKit

from app.core.settings import ProfileConfig, Settings
from app.dev import serve_both
from tests.support.apps import FakeClock, asgi_client, caller_headers, in_process
from tests.support.samples import png

pytestmark = pytest.mark.anyio

PROFILES = {
    "default": ProfileConfig(folder="/users/{caller}", private=True, allow_v1=True),
    "shared": ProfileConfig(folder="/users/{caller}", read_folder="/shared", url_lifetime=60),
}


@pytest.fixture
def url_settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    return make_settings(
        profiles=PROFILES, upload_api_url="http://test", storage_dir=tmp_path / "store"
    )


@asynccontextmanager
async def both(settings: Settings, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    """The credential service and the upload API behind one address, as ``upload-auth dev``."""
    app = serve_both(settings, clock=clock)
    async with asgi_client(app, "http://test", caller_headers(settings)) as http:
        yield http


def caller(settings: Settings) -> str:
    return "dev-dev" if settings.dev_mode else "key-backend"


async def upload_private(http: httpx.AsyncClient, name: str = "cat.png") -> dict[str, Any]:
    """A private file in the caller's folder, uploaded with a v2 credential."""
    data = png()
    token = await http.post(
        "/v2/token", json={"fileName": name, "fileSize": len(data), "mimeType": "image/png"}
    )
    assert token.status_code == 200, token.text
    grant = token.json()
    assert grant["fields"]["isPrivateFile"] == "true"
    stored = await http.post(
        grant["uploadUrl"],
        data={**grant["fields"], "token": grant["token"]},
        files={"file": (name, data, "image/png")},
        headers={"Authorization": ""},
    )
    assert stored.status_code == 200, stored.text
    return dict(stored.json())


async def test_a_private_upload_is_read_through_its_signed_url(
    url_settings: Settings, clock: FakeClock
) -> None:
    """Upload privately, ask for the signed URL, read the file; the unsigned URL is a 401,
    and so is the signed one once expired."""
    async with both(url_settings, clock) as http:
        stored = await upload_private(http)
        assert stored["filePath"].startswith(f"/users/{caller(url_settings)}/cat_")
        assert (await http.get(stored["url"])).status_code == 401
        answer = await http.post(
            "/v1/signed-url", json={"path": stored["filePath"], "expiresIn": 120}
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == {"url", "expiresAt", "serverTime"}
        assert body["expiresAt"] == int(clock()) + 120
        assert answer.headers["cache-control"] == "no-store"
        served = await http.get(body["url"])
        assert served.status_code == 200
        assert served.content == png()
        clock.advance(121)
        assert (await http.get(body["url"])).status_code == 401


async def test_the_profile_decides_which_files_and_how_long(
    url_settings: Settings, clock: FakeClock
) -> None:
    """By default only the caller's own folder; ``read_folder`` replaces it; the lifetime is
    capped at ``url_lifetime`` (3600 s by default); bad paths are 422."""
    me = caller(url_settings)
    async with in_process(url_settings, clock) as http:

        async def ask(path: str, **more: Any) -> httpx.Response:
            return await http.post("/v1/signed-url", json={"path": path, **more})

        own = await ask(f"/users/{me}/a/b/cat.png", expiresIn=10**6)
        assert own.status_code == 200
        assert own.json()["expiresAt"] == int(clock()) + 3600
        for other in ("/users/mallory/cat.png", "/cat.png", f"/users/{me}x/cat.png"):
            refused = await ask(other)
            assert refused.status_code == 403, other
            assert refused.json()["type"] == "/problems/forbidden"
            assert f"/users/{me}" in refused.json()["detail"]
        shared = await ask("/shared/team.png", profile="shared", expiresIn=600)
        assert shared.status_code == 200
        assert shared.json()["expiresAt"] == int(clock()) + 60
        assert (await ask(f"/users/{me}/cat.png", profile="shared")).status_code == 403
        for bad, problem in (
            ("/users/a b/cat.png", "invalid-folder"),
            (f"/users/{me}/../x/cat.png", "invalid-folder"),
            (f"/users/{me}/noextension", "invalid-file-name"),
            (f"/users/{me}/tool.exe", "type-not-allowed"),
        ):
            refused = await ask(bad)
            assert refused.status_code == 422, bad
            assert refused.json()["type"] == f"/problems/{problem}", bad
        assert (await ask(f"/users/{me}/cat.png", expiresIn=0)).status_code == 422
        assert (await ask(f"/users/{me}/cat.png", profile="nope")).status_code == 422
        text = await http.post(
            "/v1/signed-url",
            content=json.dumps({"path": f"/users/{me}/cat.png"}),
            headers={"Content-Type": "text/plain"},
        )
        assert text.status_code == 415


async def test_with_imagekit_as_the_endpoint_the_url_is_the_sdks(
    make_settings: Callable[..., Settings], clock: FakeClock, private_key: str
) -> None:
    """With ImageKit's upload API a URL endpoint must be set (else 503 naming the setting);
    with it, the answer is the URL the official SDK builds at that second."""
    async with in_process(make_settings(profiles=PROFILES), clock) as http:
        missing = await http.post("/v1/signed-url", json={"path": "/users/dev-dev/cat.png"})
        assert missing.status_code == 503
        assert missing.json()["type"] == "/problems/url-endpoint-missing"
        assert "UPLOAD_AUTH_URL_ENDPOINT" in missing.json()["detail"]
    endpoint = "https://ik.imagekit.io/demo"
    settings = make_settings(profiles=PROFILES, url_endpoint=endpoint)
    path = f"/users/{caller(settings)}/café.png"
    async with in_process(settings, clock) as http:
        ours = (await http.post("/v1/signed-url", json={"path": path, "expiresIn": 300})).json()
    helper = ImageKit(private_key=private_key).helper
    with mock.patch("imagekitio.lib.helper.time.time", return_value=clock()):
        sdk = helper.build_url(src=path, url_endpoint=endpoint, signed=True, expires_in=300)
    assert ours["url"] == sdk


async def test_signed_urls_are_limited_and_audited(
    make_settings: Callable[..., Settings],
    clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``rate_limit_urls`` per caller (429 with Retry-After); every answer is an audit event
    naming the file, never the URL or its signature."""
    settings = make_settings(
        profiles=PROFILES, upload_api_url="http://test", rate_limit_urls="2/minute"
    )
    path = f"/users/{caller(settings)}/cat.png"
    async with in_process(settings, clock) as http:
        answers = [await http.post("/v1/signed-url", json={"path": path}) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert "retry-after" in answers[2].headers
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "{" in line]
    audit = [line for line in lines if line.get("logger") == "upload_auth.audit"]
    assert [(a["msg"], a["version"]) for a in audit] == [
        ("credential.issued", "url"),
        ("credential.issued", "url"),
        ("credential.refused", "url"),
    ]
    assert audit[0]["filePath"] == path
    signature = answers[0].json()["url"].rsplit("ik-s=", 1)[1]
    assert all(signature not in json.dumps(line) for line in lines)
