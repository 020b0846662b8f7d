"""From validated settings to the credential service's running parts: the policy, the chain of
caller authentication, the rate limits and where grants are recorded. ``create_app`` calls these;
the parts both apps share (keys, limits, the ledger) come from ``app.core.parts``."""

from contextlib import AsyncExitStack
from dataclasses import replace

from app.core import parts as shared
from app.core.clock import Clock
from app.core.imagekit.filetypes import ALLOWED
from app.core.imagekit.rules import PlanLimits
from app.core.ledger import Ledger
from app.core.settings import ProfileConfig, Settings
from app.credential_service.callers import Authenticator
from app.credential_service.callers.api_keys import ApiKeyAuthenticator
from app.credential_service.callers.base import DevelopmentAuthenticator
from app.credential_service.metrics import Metrics
from app.credential_service.policy import Policy, Profile, seed_profile
from app.credential_service.ratelimit import RateLimiter, Throttle


def profile(
    name: str, config: ProfileConfig, plan: PlanLimits, default_ttl: int, *, dev_mode: bool
) -> Profile:
    """A ``[profiles.NAME]`` table as the policy's profile: sizes capped by the plan, the
    lifetime by the service's, v1 on by default only in development mode."""

    def capped(value: int | None, ceiling: int) -> int:
        return ceiling if value is None else min(value, ceiling)

    return Profile(
        name=name,
        types=frozenset(config.types) if config.types is not None else frozenset(ALLOWED),
        limits=PlanLimits(
            capped(config.max_size, plan.max_size),
            capped(config.max_video_size, plan.max_video_size),
        ),
        folder=config.folder,
        use_unique_file_name=config.use_unique_file_name,
        overwrite=config.overwrite,
        private=config.private,
        tags=tuple(config.tags),
        ttl=min(config.ttl or default_ttl, default_ttl),
        allow_v1=dev_mode if config.allow_v1 is None else config.allow_v1,
        read_folder=config.read_folder,
        url_lifetime=config.url_lifetime,
    )


def policy(settings: Settings) -> Policy:
    """The upload policy: the configured profiles, or the seed's upload API as ``default``
    (and, in development mode, ``private``: the same types into each caller's own private
    folder, for the demo's signed links)."""
    limits, ttl, dev = shared.plan_limits(settings), settings.credential_ttl, settings.dev_mode
    profiles = {
        name: profile(name, config, limits, ttl, dev_mode=dev)
        for name, config in settings.profiles.items()
    }
    if not profiles:
        profiles["default"] = seed_profile(limits, ttl, allow_v1=dev)
        if dev:
            profiles["private"] = replace(
                profiles["default"], name="private", private=True, folder="/private/{caller}"
            )
    return Policy(profiles, settings.default_profile)


async def caller_chain(
    settings: Settings, metrics: Metrics, clock: Clock, stack: AsyncExitStack
) -> tuple[Authenticator, ...]:
    """The caller-authentication chain the settings describe, in the order tried. An HTTP
    client (and httpx itself) is only set up when a method needs one."""
    callers = settings.callers
    chain: list[Authenticator] = []
    if callers.api_keys:
        chain.append(ApiKeyAuthenticator(callers.api_keys))
    if callers.idp or callers.forward is not None:
        import httpx

        http = await stack.enter_async_context(
            httpx.AsyncClient(follow_redirects=False, timeout=5.0)
        )
    if callers.idp:
        from app.credential_service.callers import idp

        chain.append(
            idp.IdpAuthenticator(
                idp.providers(
                    http,
                    callers.idp,
                    clock,
                    lambda outcome: metrics.jwks_fetches.labels(outcome).inc(),
                ),
                clock,
                lambda reason: metrics.idp_refusals.labels(reason).inc(),
            )
        )
    if callers.forward is not None:
        from app.credential_service.callers.forward import ForwardAuthenticator

        chain.append(
            ForwardAuthenticator(
                http, callers.forward, lambda outcome: metrics.forward_auth.labels(outcome).inc()
            )
        )
    if settings.dev_mode:
        chain.append(DevelopmentAuthenticator())
    return tuple(chain)


def throttle(settings: Settings, metrics: Metrics, clock: Clock) -> Throttle:
    """The rate limits and byte quota, shared through Redis when it is configured."""
    limiter = RateLimiter(
        settings.redis_url.get_secret_value() if settings.redis_url else None,
        metrics.rate_limit_fallbacks.inc,
        clock,
    )
    return Throttle(
        limiter,
        v1=settings.rate_limit_v1,
        v2=settings.rate_limit_v2,
        quota=settings.quota_v2,
        urls=settings.rate_limit_urls,
        on_limited=lambda version, limit: metrics.rate_limited.labels(version, limit).inc(),
    )


def grants_ledger(settings: Settings, given: Ledger | None) -> Ledger | None:
    """Where v1 grants and v2 issuers are recorded: the shared ledger, when the upload API is
    upload-auth's own (ImageKit's cannot read them); None otherwise."""
    return shared.shared_ledger(settings, given) if settings.records_v1_grants else None
