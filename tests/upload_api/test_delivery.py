"""Serving stored files: private ones only through a URL signed in ImageKit's scheme, built by
the official Python SDK's own builder; refusals for unsigned, tampered and expired URLs (401);
ranges for video seeking; ETag and Last-Modified with conditional requests."""

import json
import secrets
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
from imagekitio import ImageKit

from app.core.keys import KeyPair
from app.core.settings import Settings
from app.core.signed_urls import signed_url
from tests.support.apps import FakeClock
from tests.support.samples import png
from tests.support.uploads import V1, basic, owner_stored, upload_client

pytestmark = pytest.mark.anyio

ENDPOINT = "http://files.test/files"


@pytest.fixture
def upload_settings(
    make_settings: Callable[..., Settings], storage_dir: Path, either_storage: dict[str, Any]
) -> Settings:
    """Every promise here holds on both storages: the directory, and a bucket."""
    return make_settings(storage_dir=storage_dir, public_url="http://files.test", **either_storage)


def sdk_url(private_key: str, path: str, now: float, expires_in: int | None) -> str:
    """The URL the official Python SDK builds, at ``now``."""
    helper = ImageKit(private_key=private_key).helper
    with mock.patch("imagekitio.lib.helper.time.time", return_value=now):
        if expires_in is None:
            return helper.build_url(src=path, url_endpoint=ENDPOINT, signed=True)
        return helper.build_url(src=path, url_endpoint=ENDPOINT, signed=True, expires_in=expires_in)


@pytest.mark.parametrize("name", ["cat.png", "café au lait.png"])
async def test_a_private_file_is_served_only_through_a_signed_url(
    upload_settings: Settings, clock: FakeClock, private_key: str, pair: KeyPair, name: str
) -> None:
    """The SDK's signed URL (expiring, and not) serves the file, and ranges of it; ours is the
    same bytes; no signature, a tampered path, query or signature, and an expired URL are each
    a 401."""
    data = png()
    async with upload_client(upload_settings, clock) as http:
        body = await owner_stored(http, private_key, name, data, folder="/me", isPrivateFile="true")
        await owner_stored(http, private_key, name, data, folder="/you", isPrivateFile="true")
        path = body["filePath"]
        assert (await http.get(body["url"])).status_code == 401
        expiring = sdk_url(private_key, path, clock(), 600)
        forever = sdk_url(private_key, path, clock(), None)
        assert expiring == signed_url(pair, ENDPOINT, path, int(clock()) + 600)
        assert forever == signed_url(pair, ENDPOINT, path, None)
        for url in (expiring, forever):
            served = await http.get(url)
            assert served.status_code == 200
            assert served.content == data
            assert served.headers["cache-control"] == "private, max-age=60"
            part = await http.get(url, headers={"Range": "bytes=8-15"})  # seeking, signed
            assert part.status_code == 206
            assert part.content == data[8:16]
        refusals = {
            "unsigned": body["url"],
            "another file": expiring.replace("/me/", "/you/"),
            "query added": expiring.replace("?", "?w=1&"),
            "signature changed": expiring[:-1] + ("0" if expiring[-1] != "0" else "1"),
            "expiry moved": expiring.replace(f"ik-t={int(clock()) + 600}", "ik-t=9999999990"),
            "expiry not a number": expiring.replace(f"ik-t={int(clock()) + 600}", "ik-t=soon"),
        }
        for case, url in refusals.items():
            refused = await http.get(url)
            assert refused.status_code == 401, case
            assert "message" in refused.json(), case
        clock.advance(601)
        expired = await http.get(expiring)
        assert expired.status_code == 401
        assert "expired" in expired.json()["message"]
        assert (await http.get(forever)).status_code == 200


async def test_public_files_need_no_signature(uploads: httpx.AsyncClient, private_key: str) -> None:
    body = await owner_stored(uploads, private_key, "open.png", png())
    assert (await uploads.get(body["url"])).status_code == 200
    assert (await uploads.get(body["url"] + "?ik-s=nonsense")).status_code == 200


async def test_ranges_etag_and_conditional_requests(
    uploads: httpx.AsyncClient, private_key: str
) -> None:
    """A range gets 206 with those bytes (video seeking); the ETag and Last-Modified come
    back, and a request naming them gets 304 without the body; an overwrite changes the
    ETag."""
    data = bytes(range(256)) * 64
    body = await owner_stored(uploads, private_key, "clip.mp4", b"\x00\x00\x00\x18ftypmp42" + data)
    url = body["url"]
    whole = await uploads.get(url)
    content = whole.content
    part = await uploads.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(content)}"
    etag, modified = whole.headers["etag"], whole.headers["last-modified"]
    for conditional in ({"If-None-Match": etag}, {"If-None-Match": f'"x", W/{etag}'}):
        again = await uploads.get(url, headers=conditional)
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag
    assert (await uploads.get(url, headers={"If-Modified-Since": modified})).status_code == 304
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert (await uploads.get(url, headers={"If-Modified-Since": old})).status_code == 200
    assert (await uploads.get(url, headers={"If-Modified-Since": "garbage"})).status_code == 200
    assert (await uploads.get(url, headers={"If-None-Match": '"other"'})).status_code == 200
    ranged = await uploads.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert ranged.status_code == 206
    replaced = await uploads.post(
        V1,
        data={"fileName": "clip.mp4", "useUniqueFileName": "false", "overwriteFile": "true"},
        files={"file": ("clip.mp4", b"\x00\x00\x00\x18ftypmp42" + data[::-1], "video/mp4")},
        headers=basic(private_key),
    )
    assert replaced.status_code == 200
    fresh = await uploads.get(url, headers={"If-None-Match": etag})
    assert fresh.status_code == 200
    assert fresh.headers["etag"] != etag


@pytest.mark.parametrize("size", [16 * 1024, 300 * 1024])
async def test_small_and_large_files_answer_alike(
    uploads: httpx.AsyncClient, private_key: str, size: int
) -> None:
    """A file read at once (small) and one streamed (over 256 KiB on the directory) answer
    with the same headers: its length, ETag, Last-Modified and Accept-Ranges; HEAD gives them
    without the body; a Range whose If-Range names another version gets the whole file."""
    data = b"\x00\x00\x00\x18ftypmp42" + secrets.token_bytes(size)
    body = await owner_stored(uploads, private_key, "clip.mp4", data)
    whole = await uploads.get(body["url"])
    assert whole.content == data
    head = await uploads.head(body["url"])
    assert head.status_code == 200
    assert head.content == b""
    for answer in (whole, head):
        assert answer.headers["content-length"] == str(len(data))
        assert answer.headers["accept-ranges"] == "bytes"
        assert answer.headers["content-type"] == "video/mp4"
        assert answer.headers["etag"] == f'"{body["versionInfo"]["id"]}"'
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert head.headers["last-modified"] == whole.headers["last-modified"]
    stale = {"Range": "bytes=0-9", "If-Range": '"another"'}
    assert (await uploads.get(body["url"], headers=stale)).content == data


def node_sdk_urls(now: int, private_key: str, requests: list[tuple[str, int | None]]) -> Any:
    """The URLs ImageKit's Node SDK builds for ``requests`` at ``now``."""
    node = shutil.which("node")
    assert node is not None, "node is needed (./scripts/setup --test installs it)"
    script = Path(__file__).with_name("node_sdk_urls.js")
    arguments = [str(now), private_key, ENDPOINT, json.dumps(requests)]
    result = subprocess.run(
        [node, str(script), *arguments], capture_output=True, text=True, timeout=30, check=True
    )
    return json.loads(result.stdout)


async def test_the_node_sdk_signs_the_same_urls_and_they_are_served(
    upload_settings: Settings, clock: FakeClock, private_key: str, pair: KeyPair
) -> None:
    """ImageKit's Node SDK (``imagekit``'s ``url({signed, expireSeconds})``) builds the same
    URLs as ours for the same inputs, and the upload API serves them."""
    data = png()
    async with upload_client(upload_settings, clock) as http:
        stored = [
            (await owner_stored(http, private_key, n, data, folder="/me", isPrivateFile="true"))
            for n in ("cat.png", "café au lait.png", "a(1)+b.png")
        ]
        requests = [(s["filePath"], e) for s in stored for e in (600, None)]
        urls = node_sdk_urls(int(clock()), private_key, requests)
        for (path, expires), url in zip(requests, urls, strict=True):
            at = None if expires is None else int(clock()) + expires
            assert url == signed_url(pair, ENDPOINT, path, at)
            served = await http.get(url)
            assert served.status_code == 200, url
            assert served.content == data
