"""``file`` given as a URL: fetched, as ImageKit fetches it, without becoming a way into the
networks the upload API can reach (SSRF).

- Only ``http`` and ``https``. The host name is resolved here, every address it resolves to
  must be public (global unicast: not private, loopback, link-local, shared, reserved,
  multicast; an IPv6 address that carries an IPv4 address (mapped, IPv4-compatible, NAT64,
  6to4, Teredo) judged by the IPv4 addresses it reaches), and the connection goes to the
  address that was checked (the name is not resolved again, so a DNS answer cannot change in
  between). TLS is still verified against the host name.
- Redirects are followed by hand, at most ``MAX_REDIRECTS``, and each new address is checked
  the same way.
- The body is written to disk as it arrives and refused the moment it passes the size limit; the
  whole fetch has one deadline.
- An allow-list of networks (``fetch_allow_networks``) opens chosen private networks: an
  internal media server, or loopback for tests.

Only an authenticated upload fetches (the credential is checked first). Proxies from the
environment are not used.
"""

import asyncio
import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Final
from urllib.parse import urljoin, urlsplit

import httpx

from app.upload_api import messages
from app.upload_api.form import MAX_URL_BYTES, FileSink, NewTemp, UploadedFile

MAX_REDIRECTS: Final = 5

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


#: IPv6 prefixes whose addresses carry an IPv4 address a gateway or tunnel reaches for them.
#: NAT64 (RFC 6052): the well-known prefix embeds it in the last 32 bits; the local-use prefix's
#: layout depends on the operator's prefix length, so it is refused whole.
_NAT64_WELL_KNOWN: Final = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL_USE: Final = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE: Final = ipaddress.IPv6Network("::/96")


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address] | None:
    """The IPv4 addresses an IPv6 address reaches through a translation or a tunnel: mapped
    (``::ffff:a.b.c.d``), IPv4-compatible (``::a.b.c.d``), NAT64 (``64:ff9b::a.b.c.d``), 6to4
    (``2002:AABB:CCDD::``) and Teredo (server and client); None when it embeds none."""
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return list(address.teredo)
    if address in _NAT64_WELL_KNOWN or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    return None


def is_public(address: IPAddress) -> bool:
    """A global unicast address: never private, loopback, link-local (cloud metadata at
    169.254.169.254), shared (100.64/10), reserved, unspecified or multicast. An IPv6 address
    that embeds IPv4 addresses is judged by them all (the gateway or tunnel reaches them); the
    NAT64 local-use prefix is never public."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL_USE:
            return False
        inside = embedded_ipv4(address)
        if inside is not None:
            return all(is_public(v4) for v4 in inside)
    return address.is_global and not address.is_multicast


class RemoteFiles:
    def __init__(self, allow: Sequence[IPNetwork] = (), *, timeout: float = 30.0) -> None:
        self.allow = tuple(allow)
        self.timeout = timeout
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment: we connect where we checked
            timeout=httpx.Timeout(timeout),
            headers={"Accept-Encoding": "identity", "User-Agent": "upload-auth fetch"},
        )

    def allowed(self, address: IPAddress) -> bool:
        return is_public(address) or any(address in network for network in self.allow)

    async def fetch(
        self, url: str, new_temp: NewTemp, cap_for_head: Callable[[bytes], int]
    ) -> UploadedFile:
        """The file at ``url``, on disk in a file from ``new_temp`` (the caller removes it), or
        ``messages.UploadError``: a refused address, a failed fetch, or a file over the limit."""
        sink = FileSink(new_temp, cap_for_head, text=False)
        try:
            async with asyncio.timeout(self.timeout):
                await self._follow(url, sink)
            return sink.finish()
        except TimeoutError:
            sink.discard()
            raise messages.remote_fetch_failed("it did not answer in time") from None
        except BaseException:
            sink.discard()
            raise

    async def _follow(self, url: str, sink: FileSink) -> None:
        for _ in range(MAX_REDIRECTS + 1):
            request = await self._pinned_request(url)
            try:
                response = await self._client.send(request, stream=True)
            except httpx.HTTPError:
                raise messages.remote_fetch_failed("it could not be reached") from None
            try:
                if response.is_redirect and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    continue
                if response.status_code != 200:
                    raise messages.remote_fetch_failed(f"it answered {response.status_code}")
                try:
                    async for chunk in response.aiter_raw():
                        sink.write(chunk)
                except httpx.HTTPError:
                    raise messages.remote_fetch_failed("the transfer broke off") from None
                return
            finally:
                await response.aclose()
        raise messages.remote_fetch_failed("it redirected too many times")

    async def _pinned_request(self, url: str) -> httpx.Request:
        """A GET for ``url`` sent to the checked address of its host."""
        if len(url) > MAX_URL_BYTES:
            raise messages.invalid_parameter("file")
        try:
            parts = urlsplit(url)
            default_port = 443 if parts.scheme == "https" else 80
            port = parts.port or default_port
        except ValueError:
            raise messages.invalid_parameter("file") from None
        host = parts.hostname
        if parts.scheme not in ("http", "https") or not host:
            raise messages.invalid_parameter("file")
        address = await self._checked_address(host, port)
        literal = f"[{address}]" if address.version == 6 else str(address)
        target = parts._replace(netloc=f"{literal}:{port}", fragment="").geturl()
        name = f"[{host}]" if ":" in host else host  # an IPv6 literal keeps its brackets
        host_header = name if port == default_port else f"{name}:{port}"
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        return self._client.build_request(
            "GET", target, headers={"Host": host_header}, extensions=extensions
        )

    async def _checked_address(self, host: str, port: int) -> IPAddress:
        try:
            found = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except (socket.gaierror, UnicodeError, OSError):
            raise messages.remote_fetch_failed("its host name does not resolve") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found]
        if not addresses:
            raise messages.remote_fetch_failed("its host name does not resolve")
        if not all(self.allowed(address) for address in addresses):
            raise messages.remote_address_refused()
        return addresses[0]

    async def close(self) -> None:
        await self._client.aclose()
