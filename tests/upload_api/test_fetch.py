"""``file`` given as a URL: fetched from a real HTTP server on loopback (allowed by the
operator's allow-list), and refused wherever it would reach into a private network: loopback,
private ranges, link-local cloud metadata, redirects into them, too many redirects, a body over
the limit, a server too slow."""

import ipaddress
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.settings import Settings
from app.upload_api.fetch import is_public
from tests.support import media_files as mf
from tests.support.apps import FakeClock
from tests.support.servers import serving
from tests.support.uploads import V1, V2, basic, upload_client, v1_fields

pytestmark = pytest.mark.anyio

PICTURE = mf.image("png", 40, 30)


class FileHost:
    """A web server with files, redirects and misbehaviour; records the paths asked for."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        host = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                host.asked.append(self.path)
                path, _, query = self.path.partition("?")
                if path == "/picture.png":
                    self._send(200, PICTURE, "image/png")
                elif path == "/redirect":
                    self._redirect(query.removeprefix("to="))
                elif path == "/loop":
                    self._redirect("/loop")
                elif path == "/big":
                    self.send_response(200)
                    self.end_headers()  # no length: the cap must hold while streaming
                    try:
                        for _ in range(64):
                            self.wfile.write(b"\x89PNG\r\n\x1a\n" + b"\x00" * 65528)
                    except OSError:
                        pass
                elif path == "/slow":
                    time.sleep(5)
                    self._send(200, PICTURE, "image/png")
                else:
                    self._send(404, b"not here", "text/plain")

            def _redirect(self, location: str) -> None:
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _send(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def host() -> Iterator[FileHost]:
    running = FileHost()
    with serving(running.server):
        yield running


@pytest.fixture
def allowing_loopback(make_settings: Callable[..., Settings], storage_dir: Path) -> Settings:
    return make_settings(
        storage_dir=storage_dir,
        public_url="http://files.test",
        fetch_allow_networks=["127.0.0.1/32"],
        fetch_timeout=2,
        max_file_size="1mb",
    )


async def send_url(http: httpx.AsyncClient, private_key: str, url: str) -> httpx.Response:
    return await http.post(
        V2,
        data={"fileName": "from-url.png", "useUniqueFileName": "false"},
        files={"file": (None, url.encode())},  # a text part, as the SDKs send a URL
        headers=basic(private_key),
    )


async def test_a_url_is_fetched_and_stored(
    allowing_loopback: Settings, clock: FakeClock, private_key: str, host: FileHost
) -> None:
    async with upload_client(allowing_loopback, clock) as http:
        response = await send_url(http, private_key, host.url + "/picture.png")
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["width"], body["height"]) == (40, 30)
        assert (await http.get("/files/from-url.png")).content == PICTURE
        followed = await send_url(http, private_key, host.url + "/redirect?to=/picture.png")
        assert followed.status_code == 200, followed.text
    assert allowing_loopback.storage_dir.joinpath("tmp").exists()
    assert not list(allowing_loopback.storage_dir.rglob("*.part"))


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/redirect?to=http://169.254.169.254/latest/meta-data/", "not public"),
        ("/redirect?to=http://10.0.0.8/", "not public"),
        ("/redirect?to=http://[::1]:1/", "not public"),
        ("/redirect?to=ftp://127.0.0.1/x", "invalid file parameter"),
        ("/loop", "redirected too many times"),
        ("/missing.png", "answered 404"),
        ("/slow", "did not answer in time"),
        ("/big", "exceeds"),
    ],
)
async def test_what_a_url_may_not_reach_or_bring(
    allowing_loopback: Settings,
    clock: FakeClock,
    private_key: str,
    host: FileHost,
    path: str,
    reason: str,
) -> None:
    async with upload_client(allowing_loopback, clock) as http:
        started = time.monotonic()
        response = await send_url(http, private_key, host.url + path)
        assert response.status_code == 400, response.text
        assert reason in response.json()["message"]
        assert time.monotonic() - started < 4.5  # the fetch's deadline (2 s) holds
        assert (await http.get("/files/from-url.png")).status_code == 404
    assert not list(allowing_loopback.storage_dir.rglob("*.part"))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/picture.png",
        "http://localhost:{port}/picture.png",
        "http://[::ffff:127.0.0.1]:{port}/picture.png",
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://192.168.1.1/",
        "http://0.0.0.0:{port}/picture.png",
        "http://2130706433:{port}/picture.png",
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
        "http://[2002:a9fe:a9fe::1]/latest/meta-data/",
        "http://[::a9fe:a9fe]/latest/meta-data/",
    ],
)
async def test_without_an_allow_list_nothing_private_is_fetched(
    upload_settings: Settings, clock: FakeClock, private_key: str, host: FileHost, url: str
) -> None:
    port = host.url.rpartition(":")[2]
    async with upload_client(upload_settings, clock) as http:
        response = await send_url(http, private_key, url.format(port=port))
    assert response.status_code == 400, response.text
    assert "not public" in response.json()["message"]
    assert host.asked == []


async def test_nothing_is_fetched_for_an_upload_that_is_not_authenticated(
    allowing_loopback: Settings, clock: FakeClock, host: FileHost, pair: Any
) -> None:
    async with upload_client(allowing_loopback, clock) as http:
        fields = v1_fields(pair, clock, fileName="x.png")
        fields["signature"] = "0" * 40
        url = (host.url + "/picture.png").encode()
        refused = await http.post(V1, data=fields, files={"file": (None, url)})
        assert refused.status_code == 400
        assert "signature" in refused.json()["message"]
    assert host.asked == []


async def test_a_host_that_does_not_resolve(
    allowing_loopback: Settings, clock: FakeClock, private_key: str
) -> None:
    async with upload_client(allowing_loopback, clock) as http:
        response = await send_url(http, private_key, "http://no-such-host.invalid/x.png")
    assert response.status_code == 400
    assert "does not resolve" in response.json()["message"]


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("100.100.100.200", False),
        ("0.0.0.0", False),  # noqa: S104 - an address judged, nothing bound
        ("224.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd00:ec2::254", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:8.8.8.8", True),
        ("ff02::1", False),
        # IPv6 forms that carry an IPv4 address, judged by it (a gateway or tunnel reaches it)
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 well-known prefix: 169.254.169.254
        ("64:ff9b::7f00:1", False),  # NAT64: 127.0.0.1
        ("64:ff9b::808:808", True),  # NAT64: 8.8.8.8
        ("64:ff9b:1::a9fe:a9fe", False),  # NAT64 local-use prefix: never public
        ("64:ff9b:1:ffff::808:808", False),
        ("2002:a9fe:a9fe::1", False),  # 6to4: 169.254.169.254
        ("2002:0a00:0001::1", False),  # 6to4: 10.0.0.1
        ("2002:808:808::1", True),  # 6to4: 8.8.8.8
        ("::a9fe:a9fe", False),  # IPv4-compatible: 169.254.169.254
        ("::7f00:1", False),  # IPv4-compatible: 127.0.0.1
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # Teredo: client 192.0.2.45
        ("2001:0:a9fe:a9fe:0:f227:f7f7:f7f7", False),  # Teredo: server 169.254.169.254
    ],
)
def test_only_global_unicast_addresses_are_public(address: str, public: bool) -> None:
    """Each address is public exactly when it and every IPv4 address it carries are global
    unicast."""
    assert is_public(ipaddress.ip_address(address)) is public


@given(st.ip_addresses(v=4))
def test_every_ipv4_form_of_an_address_is_judged_as_the_address(v4: ipaddress.IPv4Address) -> None:
    """Mapped, IPv4-compatible, NAT64 and 6to4 spellings of any IPv4 address are public exactly
    when the address is."""
    expected = is_public(v4)
    value = int(v4)
    forms = [
        ipaddress.IPv6Address((0xFFFF << 32) | value),
        ipaddress.IPv6Address(int(ipaddress.IPv6Address("64:ff9b::")) | value),
        ipaddress.IPv6Address((0x2002 << 112) | (value << 80) | 1),
    ]
    if value > 1:
        forms.append(ipaddress.IPv6Address(value))
    assert [is_public(form) for form in forms] == [expected] * len(forms)
