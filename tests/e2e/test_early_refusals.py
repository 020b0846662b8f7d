"""A refusal decided before the whole body was read reaches every client: Node's fetch
(which writes the whole body before it reads the answer), httpx, curl and Chromium all get the
400 for a 40 MB file against the 25 MB limit, not a broken pipe."""

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright

from tests.support.apps import new_private_key, new_public_key
from tests.support.browser import CHROMIUM_ARGS
from tests.support.samples import png
from tests.support.servers import Server, clean_env, require_program, running
from tests.support.uploads import basic

pytestmark = pytest.mark.e2e

SIZE = 40 * 1000 * 1000
TOO_LARGE = "Your request contains invalid file parameter. The file size exceeds limits."

NODE_FETCH = """
const [url, authorization, size] = process.argv.slice(1);
const bytes = new Uint8Array(Number(size));
bytes.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const form = new FormData();
form.append("fileName", "big.png");
form.append("file", new Blob([bytes], {type: "image/png"}), "big.png");
try {
  const answer = await fetch(url, {method: "POST", body: form, headers: {authorization}});
  console.log(JSON.stringify({status: answer.status, body: await answer.json()}));
} catch (error) {
  console.log(JSON.stringify({error: String(error), cause: String(error.cause)}));
}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, Path]]:
    root = tmp_path_factory.mktemp("early")
    private = new_private_key()
    env = clean_env(
        IMAGEKIT_PUBLIC_KEY=new_public_key(),
        IMAGEKIT_PRIVATE_KEY=private,
        UPLOAD_AUTH_STORAGE_DIR=str(root / "store"),
    )
    big = root / "big.png"
    big.write_bytes(png() + b"\0" * (SIZE - len(png())))
    with running(["upload-api"], env=env, log=root / "api.log") as started:
        yield started, private, big


def test_nodes_fetch_reads_the_refusal(server: tuple[Server, str, Path]) -> None:
    """Node 20's built-in fetch (undici) gets the 400 and ImageKit's message."""
    node = require_program("node")
    api, private, _ = server
    result = subprocess.run(
        [
            node,
            "--input-type=module",
            "-e",
            NODE_FETCH,
            api.url + "/api/v1/files/upload",
            basic(private)["Authorization"],
            str(SIZE),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    answer = json.loads(result.stdout)
    assert answer.get("status") == 400, answer
    assert answer["body"]["message"] == TOO_LARGE


def test_httpx_reads_the_refusal(server: tuple[Server, str, Path]) -> None:
    api, private, big = server
    with big.open("rb") as file:
        response = httpx.post(
            api.url + "/api/v1/files/upload",
            headers=basic(private),
            data={"fileName": "big.png"},
            files={"file": ("big.png", file, "image/png")},
            timeout=60,
        )
    assert response.status_code == 400
    assert response.json()["message"] == TOO_LARGE


def test_curl_reads_the_refusal(server: tuple[Server, str, Path]) -> None:
    curl = require_program("curl")
    api, private, big = server
    result = subprocess.run(
        [
            curl,
            "-sS",
            "-u",
            f"{private}:",
            "-F",
            "fileName=big.png",
            "-F",
            f"file=@{big};type=image/png",
            "-w",
            "\n%{http_code}",
            api.url + "/api/v1/files/upload",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    body, _, status = result.stdout.rpartition("\n")
    assert (result.returncode, status) == (0, "400"), result.stderr
    assert json.loads(body)["message"] == TOO_LARGE


def test_chromium_reads_the_refusal(server: tuple[Server, str, Path]) -> None:
    chromium = require_program("chromium")
    api, private, _ = server
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page()
        page.goto(api.url + "/healthz")  # the same origin: no CORS needed
        answer = page.evaluate(
            """async ([authorization, size]) => {
                const bytes = new Uint8Array(size);
                bytes.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
                const form = new FormData();
                form.append("fileName", "big.png");
                form.append("file", new Blob([bytes], {type: "image/png"}), "big.png");
                const response = await fetch("/api/v1/files/upload",
                    {method: "POST", body: form, headers: {authorization}});
                return {status: response.status, body: await response.json()};
            }""",
            [basic(private)["Authorization"], SIZE],
        )
        browser.close()
    assert answer["status"] == 400
    assert answer["body"]["message"] == TOO_LARGE


def _anonymous_upload(url: str, total: int, sent: int) -> "socket.socket":
    """Start an upload with no credential yet (the file part comes first) and send ``sent``
    of its ``total`` file bytes."""
    boundary = "anon"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    tail = f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="fileName"\r\n\r\na.png'
    tail += f"\r\n--{boundary}--\r\n"
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(
        (
            "POST /api/v1/files/upload HTTP/1.1\r\n"
            f"Host: {host}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(head) + total + len(tail)}\r\n\r\n"
        ).encode()
        + head
    )
    data = png() + b"\0" * (total - len(png()))
    step = 1024 * 1024
    try:
        for start in range(0, sent, step):
            sock.sendall(data[start : min(start + step, sent)])
        if sent == total:
            sock.sendall(tail.encode())
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sock


def test_anonymous_bytes_in_flight_are_bounded(tmp_path: Path) -> None:
    """With a 32 MB budget, a second anonymous upload that would take the bytes in flight past
    it is refused with 503 and Retry-After; once the first goes away, uploads are taken again;
    the account owner's uploads never count."""
    private = new_private_key()
    env = clean_env(
        IMAGEKIT_PUBLIC_KEY=new_public_key(),
        IMAGEKIT_PRIVATE_KEY=private,
        UPLOAD_AUTH_STORAGE_DIR=str(tmp_path / "store"),
        UPLOAD_AUTH_MAX_UNAUTHENTICATED_BYTES="32mb",
    )
    with running(["upload-api"], env=env, log=tmp_path / "api.log") as api, ExitStack() as open_:
        first = open_.enter_context(_anonymous_upload(api.url, 24 * 1024 * 1024, 20 * 1024 * 1024))
        time.sleep(0.5)
        owner = httpx.post(
            api.url + "/api/v1/files/upload",
            headers=basic(private),
            data={"fileName": "big.png"},
            files={"file": ("big.png", png() + b"\0" * (20 * 1024 * 1024), "image/png")},
            timeout=30,
        )
        assert owner.status_code == 200, owner.text
        second = open_.enter_context(_anonymous_upload(api.url, 24 * 1024 * 1024, 24 * 1024 * 1024))
        answer = second.recv(65536)
        assert answer.startswith(b"HTTP/1.1 503 "), answer[:300]
        assert b"retry-after: 2" in answer.lower()
        first.close()
        second.close()
        time.sleep(0.5)
        later = httpx.post(
            api.url + "/api/v1/files/upload",
            data={"fileName": "a.png"},
            files={"file": ("a.png", png(), "image/png")},
        )
        assert later.status_code == 401  # taken in, and refused for what it lacks
