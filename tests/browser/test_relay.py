"""The API-key set-up from a browser, as docs/clients.md writes it: the page asks its own back
end's relay (``credentialUrl``), the relay asks upload-auth with the API key, and the file
lands. Both relays of the docs (Python with FastAPI, Node without dependencies) run exactly as
written, behind one origin (nginx: the page and the relay), in Chromium (#29)."""

import json
from contextlib import ExitStack
from pathlib import Path

import pytest
from playwright.sync_api import Page

from app.credential_service.callers.api_keys import hash_api_key, new_api_key
from tests.support.apps import new_private_key, new_public_key
from tests.support.relay import CHOSEN, app_origin, choose, relay, write_page
from tests.support.samples import png
from tests.support.servers import clean_env, free_port, redis_server, running


@pytest.mark.parametrize("kind", ["python", "node"])
def test_a_page_uploads_through_its_back_ends_relay(page: Page, tmp_path: Path, kind: str) -> None:
    api_key = new_api_key()
    keys = {"IMAGEKIT_PUBLIC_KEY": new_public_key(), "IMAGEKIT_PRIVATE_KEY": new_private_key()}
    site = tmp_path / "site"
    site.mkdir()
    write_page(site)
    app_port = free_port()
    origin = f"http://127.0.0.1:{app_port}"
    with ExitStack() as stack:
        redis_url = stack.enter_context(redis_server(tmp_path / "redis.log"))
        shared = {
            "UPLOAD_AUTH_REDIS_URL": redis_url,
            "UPLOAD_AUTH_CORS_ORIGINS": json.dumps([origin]),
        }
        uploads = stack.enter_context(
            running(
                ["upload-api"],
                env=clean_env(**keys, **shared, UPLOAD_AUTH_STORAGE_DIR=str(tmp_path / "store")),
                log=tmp_path / "upload-api.log",
            )
        )
        service = stack.enter_context(
            running(
                ["serve"],
                env=clean_env(
                    **keys,
                    **shared,
                    UPLOAD_AUTH_CALLERS=json.dumps(
                        {"api_keys": [{"name": "shop", "hash": hash_api_key(api_key)}]}
                    ),
                    UPLOAD_AUTH_PROFILES=json.dumps(
                        {"photos": {"folder": "/products", "allow_v1": True}}
                    ),
                    UPLOAD_AUTH_DEFAULT_PROFILE="photos",
                    UPLOAD_AUTH_UPLOAD_API_URL=uploads.url,
                ),
                log=tmp_path / "service.log",
            )
        )
        back_end = stack.enter_context(
            relay(
                kind,
                tmp_path,
                clean_env(UPLOAD_AUTH_URL=service.url, UPLOAD_AUTH_API_KEY=api_key),
            )
        )
        stack.enter_context(app_origin(tmp_path, app_port, site, back_end.url))
        picture = tmp_path / "shoe.png"
        picture.write_bytes(png(8, 8))
        choose(page, origin, picture)
        written = page.evaluate(f"async () => await window.asWritten({CHOSEN})")
        v1 = page.evaluate(f"async (url) => await window.asV1({CHOSEN}, url)", uploads.url)
        through_function = page.evaluate(f"async () => await window.viaFunction({CHOSEN})")
        relay_log = back_end.output()
    for answer in (written, v1, through_function):
        assert answer["filePath"].startswith("/products/shoe")
    stored = [p for p in (tmp_path / "store" / "files").rglob("*") if p.is_file()]
    assert sorted(p.read_bytes() for p in stored) == [picture.read_bytes()] * 3
    assert api_key not in relay_log
