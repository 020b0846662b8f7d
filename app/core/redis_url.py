"""Where Redis is, read from a URL (pure: no client is loaded). The ``limits`` library's syntax,
so that the rate limits read the same URL:

- ``redis://[user:password@]host:port[/db]`` (``rediss://`` with TLS): one server;
- ``redis+sentinel://[user:password@]host:port[,host:port...]/service``: the sentinels, asked
  for the current primary of ``service``; the password is the sentinels' and the data nodes'
  alike;
- ``redis+cluster://[user:password@]host:port[,host:port...]``: any nodes of the cluster.

In a Cluster every key of this service carries one hash tag (``{upload-auth}``), so the ledger's
and the outbox's scripts, which read and write several keys at once, stay in one slot: the
epoch that vouches for the used credentials must live where they do, and a shard's failover
is then one ledger's failover. The rate limits' keys spread over the cluster (``limits``).
"""

from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import unquote

SCHEMES: Final = ("redis", "rediss", "redis+sentinel", "redis+cluster")


@dataclass(frozen=True)
class Target:
    """Where Redis is, read from a URL."""

    kind: Literal["server", "sentinel", "cluster"]
    nodes: tuple[tuple[str, int], ...] = ()
    service: str = ""
    username: str | None = None
    password: str | None = None


def target_of(url: str) -> Target:
    """The URL read; ValueError (without the URL, which may hold a password) if it cannot be."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in SCHEMES:
        raise ValueError(f"a Redis URL starts with one of {', '.join(s + '://' for s in SCHEMES)}")
    if scheme in ("redis", "rediss"):
        return Target("server")
    authority, _, path = rest.partition("/")
    credentials, at, hosts = authority.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = credentials.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    nodes = []
    for node in hosts.split(","):
        host, colon, port = node.strip().rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("each Redis node is host:port")
        nodes.append((host.strip("[]"), int(port)))
    if scheme == "redis+cluster":
        return Target("cluster", tuple(nodes), "", username, password)
    service = path.strip("/")
    if not service or "/" in service:
        raise ValueError("a redis+sentinel:// URL ends with /SERVICE, the monitored primary's name")
    return Target("sentinel", tuple(nodes), service, username, password)


def key_prefix(url: str) -> str:
    """The first part of every key this service writes: hash-tagged in a Cluster."""
    return "{upload-auth}:" if target_of(url).kind == "cluster" else "upload-auth:"


def limits_uri(url: str) -> str:
    """The URL for the ``limits`` library's asyncio storage (its syntax is ours)."""
    return "async+" + url
