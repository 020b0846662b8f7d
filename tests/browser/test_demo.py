"""The demo page in Chromium: real uploads across three origins (so CORS is exercised for
real), readable errors, cancellation, and the official SDK through its xhr hook."""

import base64
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import ARTIFACTS, MAX_SIZE, SDK, Origins
from tests.support.samples import png
from tests.support.servers import require_program, unavailable

pytestmark = pytest.mark.e2e

LABELS = {"v1": "v1 · signature", "v2": "v2 · file-scoped JWT"}


def choose(page: Page, origins: Origins, version: str, path: Path) -> None:
    page.goto(origins.demo_url())
    page.get_by_text(LABELS[version]).click()
    expect(page.locator(f"#{version}")).to_be_checked()
    page.set_input_files("#file", str(path))


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_upload_succeeds_and_the_image_renders(
    page: Page, origins: Origins, tmp_path: Path, version: str
) -> None:
    """Pick a file: the page gets a credential from one origin, uploads to another, and shows
    the stored image from there."""
    image = tmp_path / f"cat-{version}.png"
    image.write_bytes(png(40, 30))
    choose(page, origins, version, image)
    expect(page.locator("#status.done")).to_contain_text("Uploaded cat", timeout=15000)
    result = page.locator("#result").inner_text()
    assert origins.upload_api.url in result
    rendered = page.wait_for_function(
        "() => { const i = document.getElementById('uploaded');"
        " return i && i.complete && i.naturalWidth; }",
        timeout=10000,
    )
    assert rendered.json_value() == 40
    link = page.locator("#stored-link")  # a link to the stored file, to open it
    assert link.get_attribute("href") == json.loads(result)["url"]
    favicon = page.evaluate("() => document.querySelector('link[rel=icon]').href")
    assert favicon.startswith("data:image/svg+xml")
    if version == "v2":
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "demo-after-upload.png"), full_page=True)


def test_a_private_upload_is_shown_through_its_signed_link(
    page: Page, origins: Origins, tmp_path: Path
) -> None:
    """Tick "private": the file goes into the caller's private folder, the page asks the
    credential service for a signed link and the image renders through it; the file's plain
    URL is refused (401)."""
    image = tmp_path / "secret.png"
    image.write_bytes(png(40, 30))
    page.goto(origins.demo_url())
    page.check("#private")
    page.set_input_files("#file", str(image))
    expect(page.locator("#status.done")).to_contain_text("Uploaded secret", timeout=15000)
    link = page.locator("#signed-link")
    expect(link).to_contain_text("Signed link, valid until")
    signed = link.get_attribute("href") or ""
    assert "ik-t=" in signed
    assert "ik-s=" in signed
    rendered = page.wait_for_function(
        "() => { const i = document.getElementById('uploaded');"
        " return i && i.complete && i.naturalWidth; }",
        timeout=10000,
    )
    assert rendered.json_value() == 40
    result = json.loads(page.locator("#result").inner_text())
    assert result["filePath"].startswith("/private/dev-dev/")
    plain = page.evaluate("async (url) => (await fetch(url)).status", result["url"])
    assert plain == 401
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo-private-signed-link.png"), full_page=True)


@pytest.mark.parametrize(
    ("version", "name", "data", "message"),
    [
        (
            "v2",
            "huge.png",
            png(1, 1) + b"\x00" * (MAX_SIZE + 1),
            "over this profile's 200 KiB limit for image files",
        ),
        ("v1", "huge.png", png(1, 1) + b"\x00" * (MAX_SIZE + 1), "The file size exceeds limits"),
        ("v2", "tool.exe", b"MZ\x90\x00", "not an allowed upload type"),
        ("v1", "tool.exe", b"MZ\x90\x00", "This file type is not allowed"),
    ],
)
def test_refusals_are_readable(
    page: Page,
    origins: Origins,
    tmp_path: Path,
    version: str,
    name: str,
    data: bytes,
    message: str,
) -> None:
    """An oversized file and a disallowed type end in a sentence a person can act on."""
    path = tmp_path / name
    path.write_bytes(data)
    choose(page, origins, version, path)
    status = page.locator("#status.error")
    expect(status).to_contain_text(message, timeout=15000)


def test_cancel_mid_upload_leaves_nothing(page: Page, origins: Origins, tmp_path: Path) -> None:
    """Cancel while bytes are on the wire: the page says so and the upload API keeps nothing."""
    before = origins.stored()
    path = tmp_path / "slow.png"
    path.write_bytes(png(1, 1) + b"\x00" * (MAX_SIZE - 1000))
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 32 * 1024},
    )
    choose(page, origins, "v2", path)
    page.wait_for_function("() => document.getElementById('progress').value > 0.05", timeout=15000)
    page.click("#cancel")
    expect(page.locator("#status")).to_have_text("Upload cancelled.", timeout=5000)
    assert page.evaluate("() => document.getElementById('progress').value") == 0  # reset
    deadline = time.monotonic() + 10
    while origins.in_flight() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert origins.in_flight() == []
    assert origins.stored() == before


def test_official_sdk_uploads_through_its_xhr_hook(page: Page, origins: Origins) -> None:
    """@imagekit/javascript from npm, given our v1 credential and an XMLHttpRequest that points
    it at our upload API, uploads across origins."""
    require_program("npm")
    if not SDK.exists():
        unavailable(f"{SDK} is missing: ./scripts/setup --test installs it with npm")
    page.goto(origins.demo_url())
    page.add_script_tag(path=str(SDK))
    result: dict[str, Any] = page.evaluate(
        """async ([authUrl, uploadApi, encoded]) => {
            class LocalXHR extends XMLHttpRequest {
              open(method, url, ...rest) {
                super.open(method, url.replace("https://upload.imagekit.io", uploadApi), ...rest);
              }
            }
            const auth = await (await fetch(`${authUrl}/v1/auth`, {cache: "no-store"})).json();
            const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
            const file = new File([bytes], "sdk.png", {type: "image/png"});
            let progressed = 0;
            const response = await ImageKit.upload({
              file, fileName: "sdk.png", folder: "/sdk",
              publicKey: auth.publicKey, token: auth.token, signature: auth.signature,
              expire: auth.expire, xhr: new LocalXHR(),
              onProgress: (event) => { progressed = event.loaded; },
            });
            return {...response, progressed};
        }""",
        [origins.service.url, origins.upload_api.url, base64.b64encode(png(12, 9)).decode()],
    )
    assert re.fullmatch(r"/sdk/sdk_[^/]{9}\.png", result["filePath"]), result["filePath"]
    assert (result["width"], result["height"]) == (12, 9)
    assert result["progressed"] > 0
    assert (origins.storage / "files" / result["filePath"][1:]).read_bytes() == png(12, 9)


def test_transient_failure_is_retried_with_a_fresh_credential(
    page: Page, origins: Origins, tmp_path: Path
) -> None:
    """A 503 from the upload API: the helper asks for a new credential and uploads again."""
    credentials: list[str] = []
    page.on("request", lambda r: credentials.append(r.url) if "/v2/token" in r.url else None)
    failures: list[str] = []

    def fail_once(route: Any) -> None:
        if not failures:
            failures.append(route.request.url)
            route.fulfill(
                status=503,
                content_type="application/json",
                body='{"message": "busy", "help": ""}',
                headers={"Access-Control-Allow-Origin": origins.demo.url},
            )
        else:
            route.continue_()

    page.route(f"{origins.upload_api.url}/api/v2/files/upload", fail_once)
    image = tmp_path / "retry.png"
    image.write_bytes(png(5, 5))
    choose(page, origins, "v2", image)
    expect(page.locator("#status.done")).to_contain_text("Uploaded retry", timeout=15000)
    assert len(failures) == 1
    assert len(credentials) == 2
