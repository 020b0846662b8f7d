"""The one way this service connects to Redis (imported only where Redis is configured): one
server, a Sentinel set's primary, or a Cluster, by the URL (``app.core.redis_url``).

Pooled connections that a restart or a failover left stale fail once when next used: each
command is retried (twice, 50-200 ms apart) on a fresh connection (for a Sentinel primary, on
the newly elected one), so a restart costs no request, while a real outage still fails within
about half a second plus the timeout. Every command the ledger and the outbox send is safe to
send twice (a burn or an add is a ``SET NX``/``HSETNX``, a claim extends a lease, a removal
removes).
"""

from typing import Any, Final

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.core.redis_url import target_of

#: What a command to Redis may raise when Redis cannot answer it. Besides redis-py's errors and
#: the socket's, its asyncio clients can raise AttributeError or TypeError from a connection
#: torn down under a command during a failover (redis/redis-py#3546, #3835; seen here in a
#: Cluster failover): the same "cannot answer now", never a 500.
FAILURES: Final = (RedisError, OSError, AttributeError, TypeError)

#: What the ledger and the outbox call: a client of one server (or of a Sentinel's primary),
#: or of a Cluster.
Client = aioredis.Redis | RedisCluster


def connect(url: str, *, timeout: float) -> Client:
    """A client for ``url`` whose commands survive a restart of Redis (or a failover)."""
    target = target_of(url)
    common: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=2),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError, ConnectionResetError],
    }
    auth: dict[str, Any] = {"username": target.username, "password": target.password}
    if target.kind == "server":
        return aioredis.Redis.from_url(url, health_check_interval=30, **common)
    if target.kind == "cluster":
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
            **auth,
            **common,
        )
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(target.nodes),
        sentinel_kwargs={**auth, "socket_timeout": timeout, "socket_connect_timeout": timeout},
        **auth,
        **common,
    )
    primary: aioredis.Redis = sentinel.master_for(target.service, health_check_interval=30)
    return primary


async def close(client: Client) -> None:
    """Close ``client``'s connections, and for a Sentinel primary the sentinels' as well."""
    await client.aclose()
    pool = getattr(client, "connection_pool", None)
    manager = getattr(pool, "sentinel_manager", None)
    for sentinel in getattr(manager, "sentinels", ()):
        await sentinel.aclose()
