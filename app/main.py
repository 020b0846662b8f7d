"""The credential service's app factory. Nothing here runs at import time.

Run with ``upload-auth serve`` (or ``uvicorn --factory app.main:create_app``).
"""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI, Request
from starlette.middleware import Middleware

from app import errors, handlers, openapi, package_version
from app.audit import Audit, AuditContext
from app.callers import Authenticator
from app.callers.api_keys import ApiKey, ApiKeyAuthenticator
from app.callers.base import DevelopmentAuthenticator
from app.clock import Clock, system_clock
from app.config import Settings, load_settings
from app.deps import State, audit_context
from app.fastpath import FastPath
from app.keysource import KeySource
from app.ledger import Ledger
from app.logs import configure_logging, get_logger
from app.metrics import Metrics
from app.middleware import BodyLimit, Fronted, RequestContext, cors
from app.ratelimit import RateLimiter, Throttle
from app.routes import health, metrics, receipts, urls, v1, v2, web
from app.service import CredentialService
from app.wiring import assemble

log = get_logger("service")

DEV_BANNER = (
    "DEVELOPMENT MODE: callers without credentials are accepted as 'dev'%s. "
    "Never run this in production."
)


def _profiles(names: list[str] | None) -> frozenset[str] | None:
    return frozenset(names) if names is not None else None


async def caller_chain(
    settings: Settings,
    metrics: Metrics,
    clock: Clock,
    stack: AsyncExitStack,
) -> tuple[Authenticator, ...]:
    """The caller-authentication chain the settings describe, in the order tried. An HTTP
    client (and httpx itself) is only set up when a method needs one."""
    callers = settings.callers
    chain: list[Authenticator] = []
    if callers.api_keys:
        chain.append(
            ApiKeyAuthenticator(
                ApiKey(k.name, bytes.fromhex(k.hash.removeprefix("sha256:")), _profiles(k.profiles))
                for k in callers.api_keys
            )
        )
    if callers.idp is not None or callers.forward is not None:
        import httpx

        http = await stack.enter_async_context(
            httpx.AsyncClient(follow_redirects=False, timeout=5.0)
        )
    if callers.idp is not None:
        from app.callers.idp import IdpAuthenticator, IdpSettings, JwksCache

        idp = callers.idp
        settings_ = IdpSettings(
            jwks_url=idp.jwks_url,
            issuer=idp.issuer,
            audience=idp.audience,
            algorithms=frozenset(idp.algorithms),
            caller_claim=idp.caller_claim,
            profiles=_profiles(idp.profiles),
            cache_seconds=idp.cache_seconds,
            refetch_seconds=idp.refetch_seconds,
            timeout=idp.timeout,
        )
        jwks = JwksCache(
            http, settings_, clock, lambda outcome: metrics.jwks_fetches.labels(outcome).inc()
        )
        chain.append(IdpAuthenticator(settings_, jwks, clock))
    if callers.forward is not None:
        from app.callers.forward import ForwardAuthenticator, ForwardSettings

        fwd = callers.forward
        chain.append(
            ForwardAuthenticator(
                http,
                ForwardSettings(
                    fwd.url, fwd.timeout, fwd.header, fwd.caller_field, _profiles(fwd.profiles)
                ),
                lambda outcome: metrics.forward_auth.labels(outcome).inc(),
            )
        )
    if settings.dev_mode:
        chain.append(DevelopmentAuthenticator())
    return tuple(chain)


def create_app(
    settings: Settings | None = None,
    *,
    keys: KeySource | None = None,
    clock: Clock = system_clock,
    fast_path: bool = True,
    ledger: Ledger | None = None,
) -> FastAPI:
    """Build the credential service. ``keys`` defaults to the settings' key source;
    ``fast_path=False`` serves the credential routes through FastAPI alone (the reference the
    fast path is tested against); ``ledger`` is where v1 grants are recorded when the upload
    API shares this process (default: Redis when configured, else nowhere)."""
    settings = settings or load_settings()
    settings.require_caller_auth()
    parts = assemble(settings, keys)
    source, policy = parts.keys, parts.policy
    ring = source.ring
    configure_logging(
        settings.log_format, settings.log_level, (p.private_key.decode() for p in ring)
    )
    registry = Metrics()
    audit = Audit(registry, frozenset(policy.profiles))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[State]:
        if settings.dev_mode:
            generated = (
                ""
                if settings.public_key or settings.keys
                else (", and the key pair is a throwaway one generated at start-up")
            )
            log.warning(DEV_BANNER, generated)
        limiter = RateLimiter(
            settings.redis_url.get_secret_value() if settings.redis_url else None,
            registry.rate_limit_fallbacks.inc,
            clock,
        )
        throttle = Throttle(
            limiter,
            v1=settings.rate_limit_v1,
            v2=settings.rate_limit_v2,
            quota=settings.quota_v2,
            urls=settings.rate_limit_urls,
            on_limited=lambda version, limit: registry.rate_limited.labels(version, limit).inc(),
        )
        async with AsyncExitStack() as stack:
            grants = ledger if settings.records_v1_grants else None
            if grants is None and settings.records_v1_grants and settings.redis_url is not None:
                from app.ledger.redis import RedisLedger

                shared = RedisLedger(settings.redis_url.get_secret_value())
                stack.push_async_callback(shared.close)
                grants = shared
            await stack.enter_async_context(source.watching())
            chain = await caller_chain(settings, registry, clock, stack)
            log.info(
                "credential service ready",
                extra={
                    "public_keys": [pair.public_key for pair in ring],
                    "signing_key": ring.signing.public_key,
                    "profiles": sorted(policy.profiles),
                    "caller_methods": [a.name for a in chain],
                    "limits_shared": settings.redis_url is not None,
                },
            )
            service = CredentialService(
                settings.upload_url_v2,
                source,
                policy,
                clock,
                chain,
                audit,
                throttle,
                grants,
                url_endpoint=settings.delivery_endpoint,
            )
            yield {"settings": settings, "keys": source, "service": service, "metrics": registry}

    def refused(context: AuditContext, problem: errors.Problem) -> None:
        audit.refused(context, reason=problem.slug, status=problem.status)

    def audit_refusal(request: Request, problem: errors.Problem) -> None:
        context = audit_context(request)
        if context is not None:
            refused(context, problem)

    routers = [health.router, v1.router, v2.router, urls.router, receipts.router]
    routers.append(web.helper_router())
    if settings.metrics_enabled:
        routers.append(metrics.router)
    if settings.dev_mode:
        routers.append(web.demo_router())

    front = [
        Middleware(RequestContext, log_access=settings.access_log, observe=registry.observe_request)
    ]
    origins = settings.browser_origins
    front += cors(
        origins,
        expose=["x-request-id", "retry-after"],
        credentials=settings.callers.forward is not None and "*" not in origins,
    )
    if fast_path:  # in front of the body limit: v1 reads no body, v2 applies the limit itself
        front.append(
            Middleware(
                FastPath,
                routes=[route for router in routers for route in router.routes],
                on_refusal=refused,
                body_limit=settings.max_body_bytes,
            )
        )
    front.append(Middleware(BodyLimit, limit=settings.max_body_bytes))
    app = Fronted(
        front,
        title="upload-auth",
        version=package_version(),
        description="Short-lived upload credentials for ImageKit-compatible upload APIs.",
        lifespan=lifespan,
        # No OpenTelemetry here: FastAPI's native hooks would be asked on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        docs_url="/docs" if settings.openapi_enabled else None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.openapi_enabled else None,
    )
    handlers.install(app, hook=audit_refusal)
    openapi.install(app)
    for router in routers:
        app.include_router(router)
    return app
