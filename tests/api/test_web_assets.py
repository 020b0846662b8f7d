"""The browser helper and the demo page are served from the installed package."""

import httpx
import pytest

from app.core.settings import Settings

pytestmark = pytest.mark.anyio


async def test_the_helper_script_is_served(client: httpx.AsyncClient) -> None:
    """``/upload-auth.js`` is the helper itself, as JavaScript, in every mode."""
    response = await client.get("/upload-auth.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert "export async function upload(file, options = {})" in response.text


async def test_the_demo_page_is_served_only_in_development_mode(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """``/demo/`` is the demo page in development mode, and no page in production."""
    page = await client.get("/demo/")
    if settings.dev_mode:
        assert page.status_code == 200
        assert "upload-auth.js" in page.text
    else:
        assert page.status_code == 404
