"""The docker-compose example, twice: its roles as processes on loopback ports (its example
app, upload-auth.toml and make-dev-keys), and the compose file itself run by podman-compose
with the images scripts/containers builds. Either way a user signs in and uploads in
Chromium, and the app shows the upload, learnt from upload-auth's webhook."""

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.support.samples import png
from tests.support.servers import (
    Server,
    clean_env,
    container_images,
    free_port,
    redis_server,
    running,
    running_argv,
    wait_until_ok,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose"


class Container:
    """A compose service's container, as the tests look at a server: its URL and its output."""

    def __init__(self, url: str, name: str) -> None:
        self.url, self.name = url, name

    def output(self) -> str:
        logs = subprocess.run(["podman", "logs", self.name], capture_output=True, text=True)
        return logs.stdout + logs.stderr


@dataclass
class Stack:
    app: Server | Container
    service: Server | Container
    upload_api: Server | Container
    storage: Path


@pytest.fixture(scope="module", params=["processes", "containers"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    if request.param == "containers":
        yield from in_containers(tmp_path_factory.mktemp("compose-containers"))
        return
    root = tmp_path_factory.mktemp("compose")
    shutil.copytree(COMPOSE, root / "compose", ignore=shutil.ignore_patterns("secrets"))
    subprocess.run([str(root / "compose" / "make-dev-keys")], check=True, capture_output=True)
    secrets = root / "compose" / "secrets"
    ports = {"app": free_port(), "upload": free_port()}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    # The compose config, with the compose network's names replaced by loopback addresses.
    config = (root / "compose" / "upload-auth.toml").read_text()
    config = config.replace("http://app:8080", urls["app"]).replace(
        "http://localhost:8080", urls["app"]
    )
    (root / "upload-auth.toml").write_text(config)
    keys = {
        "IMAGEKIT_PUBLIC_KEY_FILE": str(secrets / "imagekit_public_key"),
        "IMAGEKIT_PRIVATE_KEY_FILE": str(secrets / "imagekit_private_key"),
        "UPLOAD_AUTH_CONFIG_FILE": str(root / "upload-auth.toml"),
    }
    with (
        # compose's Redis: the ledger both roles share (single use, and who each credential
        # was issued to, which the upload's event names)
        redis_server(root / "redis.log") as redis_url,
        running(
            ["upload-api"],
            env=clean_env(
                **keys,
                UPLOAD_AUTH_REDIS_URL=redis_url,
                UPLOAD_AUTH_STORAGE_DIR=str(root / "data"),
                UPLOAD_AUTH_PUBLIC_URL=urls["upload"],
                UPLOAD_AUTH_WEBHOOK_URL=urls["app"] + "/webhooks/imagekit",
                UPLOAD_AUTH_WEBHOOK_SECRET_FILE=str(secrets / "webhook_secret"),
            ),
            log=root / "upload-api.log",
        ) as upload_api,
        running(
            ["serve"],
            env=clean_env(
                **keys, UPLOAD_AUTH_UPLOAD_API_URL=upload_api.url, UPLOAD_AUTH_REDIS_URL=redis_url
            ),
            log=root / "service.log",
        ) as service,
        running_argv(
            [sys.executable, str(root / "compose" / "example_app.py")],
            port=ports["app"],
            log=root / "app.log",
            env=clean_env(
                PORT=str(ports["app"]),
                UPLOAD_AUTH_PUBLIC_URL=service.url,
                WEBHOOK_SECRET_FILE=str(secrets / "webhook_secret"),
            ),
        ) as app,
    ):
        yield Stack(app, service, upload_api, root / "data")


def in_containers(root: Path) -> Iterator[Stack]:
    """``podman-compose up`` of the compose file as written, with the images built from
    packages (scripts/containers --env names them in the variables the file reads)."""
    images = container_images()
    shutil.copytree(COMPOSE, root / "compose", ignore=shutil.ignore_patterns("secrets"))
    compose = root / "compose"
    subprocess.run([str(compose / "make-dev-keys")], check=True, capture_output=True)
    project = f"uatest-{secrets.token_hex(4)}"  # two checkouts never share containers
    tool = [str(ROOT / ".tools" / "bin" / "podman-compose"), "-p", project]
    ports = {"APP_PORT": free_port(), "SERVICE_PORT": free_port(), "UPLOAD_API_PORT": free_port()}
    env = {**os.environ, **images, **{name: str(port) for name, port in ports.items()}}
    # The example app's image holds its code: built afresh (layers cached) so it is never stale.
    built = subprocess.run(
        [*tool, "build", "app"], cwd=compose, env=env, capture_output=True, text=True
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    try:
        up = subprocess.run(
            [*tool, "up", "-d"], cwd=compose, env=env, capture_output=True, text=True
        )
        assert up.returncode == 0, up.stderr[-2000:]
        app, service, upload_api = (
            f"http://localhost:{ports[name]}"
            for name in ("APP_PORT", "SERVICE_PORT", "UPLOAD_API_PORT")
        )
        for url in (app + "/healthz", service + "/readyz", upload_api + "/readyz"):
            wait_until_ok(url)
        volume = subprocess.run(
            ["podman", "volume", "inspect", f"{project}_uploads", "--format", "{{.Mountpoint}}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        yield Stack(
            Container(app, f"{project}_app_1"),
            Container(service, f"{project}_upload-auth_1"),
            Container(upload_api, f"{project}_upload-api_1"),
            Path(volume) / "uploads",
        )
    finally:
        subprocess.run([*tool, "down", "-v"], cwd=compose, env=env, capture_output=True)


def test_sign_in_and_upload(page: Page, stack: Stack, tmp_path: Path) -> None:
    """Sign in to the app, pick a file: upload-auth recognises the session cookie through
    forward auth and the file lands in the user's folder."""
    page.goto(stack.app.url)
    page.fill("input[name=user]", "alice")
    page.click("text=Sign in")
    expect(page.locator("body")).to_contain_text("Signed in as alice")
    picture = tmp_path / "holiday.png"
    picture.write_bytes(png(8, 8))
    expect(page.locator("#file")).to_be_enabled()  # the page's module has loaded
    page.set_input_files("#file", str(picture))
    expect(page.locator("#out")).to_contain_text("Uploaded:", timeout=15000)
    # the app learns of the upload from upload-auth's webhook, verified by the official SDK,
    # and credits it to the caller the event's receipt names
    expect(page.locator("#uploads li")).to_have_count(1, timeout=15000)
    expect(page.locator("#uploads")).to_contain_text("holiday")
    stored = list((stack.storage / "files" / "users" / "session-alice").iterdir())
    assert len(stored) == 1
    assert stored[0].read_bytes() == png(8, 8)
    audit = [
        json.loads(line)
        for line in stack.service.output().splitlines()
        if '"credential.issued"' in line
    ]
    assert audit[-1]["caller"] == "session:alice"
    assert audit[-1]["method"] == "forward"
    # another user sees none of alice's uploads; a forged event is refused by the SDK
    page.goto(stack.app.url + "/logout")
    page.fill("input[name=user]", "bob")
    page.click("text=Sign in")
    expect(page.locator("body")).to_contain_text("Signed in as bob")
    page.wait_for_timeout(1500)  # a refresh of the list has happened
    expect(page.locator("#uploads li")).to_have_count(0)
    forged = httpx.post(
        stack.app.url + "/webhooks/imagekit",
        content=b'{"type":"file.created","id":"x","data":{},"receipt":{"caller":"session:bob"}}',
        headers={
            "webhook-id": "x",
            "webhook-timestamp": str(int(time.time())),
            "webhook-signature": "v1,AAAA",
        },
    )
    assert forged.status_code == 401


def test_signed_out_is_refused(page: Page, stack: Stack, tmp_path: Path) -> None:
    """Without a session the app shows the sign-in form, and upload-auth refuses (401)."""
    page.goto(stack.app.url)
    expect(page.locator("input[name=user]")).to_be_visible()
    status = page.evaluate(
        "async (url) => (await fetch(url + '/v1/auth', {credentials: 'include'})).status",
        stack.service.url,
    )
    assert status == 401
    del tmp_path
