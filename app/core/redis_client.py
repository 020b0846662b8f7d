"""The one way this service connects to Redis (imported only where Redis is configured).

Pooled connections that a Redis restart left stale fail once when next used: each command is
retried (twice, 50-200 ms apart) on a fresh connection, so a restart costs no request, while a
real outage (connections refused) still fails within about half a second plus the timeout.
Every command the ledger and the outbox send is safe to send twice (a burn or an add is a
``SET NX``/``HSETNX``, a claim extends a lease, a removal removes).
"""

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


def connect(url: str, *, timeout: float) -> aioredis.Redis:
    """A client for ``url`` whose commands survive a restart of Redis."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError, ConnectionResetError],
        health_check_interval=30,
    )
