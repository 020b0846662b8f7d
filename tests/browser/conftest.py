"""Browser tests: Debian's Chromium driven by Playwright (never a downloaded browser), with the
demo page, the credential service and the upload API on three different loopback origins."""

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.support.apps import new_private_key, new_public_key
from tests.support.browser import CHROMIUM_ARGS, MAX_SIZE, Origins
from tests.support.servers import clean_env, redis_server, require_program, running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one test module: Playwright's sync API runs an event loop in this thread
    while it is open, which the async tests of other modules cannot share."""
    chromium = require_program("chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def origins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origins]:
    """The demo page, the credential service (development mode) and the upload API (production
    mode) on three origins; v1 grants reach the upload API through a shared Redis."""
    root = tmp_path_factory.mktemp("origins")
    keys = {"IMAGEKIT_PUBLIC_KEY": new_public_key(), "IMAGEKIT_PRIVATE_KEY": new_private_key()}
    with (
        redis_server(root / "redis.log") as redis_url,
        running(
            ["dev"],
            env=clean_env(UPLOAD_AUTH_STORAGE_DIR=str(root / "unused-a")),
            log=root / "demo.log",
        ) as demo,
    ):
        allow = json.dumps([demo.url])
        limits = {
            "UPLOAD_AUTH_MAX_FILE_SIZE": str(MAX_SIZE),
            "UPLOAD_AUTH_CORS_ORIGINS": allow,
            "UPLOAD_AUTH_REDIS_URL": redis_url,
        }
        with (
            running(
                ["upload-api"],
                env=clean_env(**keys, **limits, UPLOAD_AUTH_STORAGE_DIR=str(root / "store")),
                log=root / "upload-api.log",
            ) as upload_api,
            running(
                ["dev"],
                env=clean_env(
                    **keys,
                    **limits,
                    UPLOAD_AUTH_STORAGE_DIR=str(root / "unused-b"),
                    UPLOAD_AUTH_URL_ENDPOINT=upload_api.url + "/files",  # signed links
                ),
                log=root / "service.log",
            ) as service,
        ):
            yield Origins(demo, service, upload_api, root / "store", keys["IMAGEKIT_PRIVATE_KEY"])


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()
