"""What ``upload-auth serve`` checks before it listens, so a set-up mistake is one line at
start rather than 401s and 503s for the first users: each identity provider's key set (found
by discovery when no ``jwks_url`` is given), Redis, and a self-hosted upload API.

A configuration mistake (no discovery document, one naming another issuer, an address that
answers 4xx or is not a key set) stops the start: ``errors``. A part that does not answer now
(connection refused, a timeout, a 5xx) may come up later: ``warnings``, and the start goes on
(its users get 503 until it answers; rate limits use process memory until Redis does). The
upload API's URL is the one browsers use: from the service's own network it may not answer
(compose's localhost), which the warning says.
"""

import time
from dataclasses import dataclass, field

from app.core.settings import Settings


@dataclass
class Findings:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _where(url: str) -> str:
    """A Redis URL without its credentials: its scheme and nodes."""
    scheme, _, rest = url.partition("://")
    authority = rest.partition("/")[0].rpartition("@")[2]
    return f"{scheme}://{authority}"


async def check(settings: Settings) -> Findings:
    found = Findings()
    if settings.records_v1_grants:  # a self-hosted upload API (not ImageKit's)
        await _upload_api(settings.upload_api_url, found)
    if settings.callers.idp:  # the HTTP client and the JWT verifier only where they are used
        import httpx

        from app.credential_service.callers import idp

        async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as http:
            providers = idp.providers(http, settings.callers.idp, time.time, lambda _: None)
            for keys in await idp.check_providers(providers):
                line = f"identity provider {keys.settings.issuer}: {keys.problem}"
                if keys.misconfigured:
                    found.errors.append(line)
                else:
                    found.warnings.append(line + " (its users get 503 until it answers)")
    if settings.redis_url is not None:
        from app.core.redis_client import close, connect

        url = settings.redis_url.get_secret_value()
        client = connect(url, timeout=2)
        try:
            await client.ping()
        except Exception as exc:  # any failure to answer is the same finding
            found.warnings.append(
                f"Redis at {_where(url)} does not answer "
                f"({type(exc).__name__}): rate limits use this process's memory until it does"
            )
        finally:
            await close(client)
    return found


async def _upload_api(url: str, found: Findings) -> None:
    import httpx

    try:
        async with httpx.AsyncClient(trust_env=False, timeout=2) as http:
            answer = await http.get(url.rstrip("/") + "/healthz")
    except httpx.HTTPError as exc:
        reason: str | None = type(exc).__name__
    else:
        reason = None if answer.status_code == 200 else f"status {answer.status_code}"
    if reason is not None:
        found.warnings.append(
            f"the upload API at {url} does not answer from here ({reason}): uploads to it "
            "fail unless browsers reach it by another route"
        )
