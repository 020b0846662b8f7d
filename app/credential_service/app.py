"""The credential service's app factory. Nothing here runs at import time.

Run with ``upload-auth serve`` (or ``uvicorn --factory app.credential_service.app:create_app``).
"""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI, Request
from starlette.middleware import Middleware

from app import package_version
from app.core import errors
from app.core import parts as shared
from app.core.clock import Clock, system_clock
from app.core.http import probes, problems
from app.core.http.middleware import BodyLimit, Fronted, RequestContext, cors
from app.core.keysource import KeySource
from app.core.ledger import Ledger
from app.core.logs import configure_logging, get_logger
from app.core.settings import Settings, load_settings
from app.credential_service import openapi, parts
from app.credential_service.audit import Audit, AuditContext
from app.credential_service.dependencies import State, audit_context
from app.credential_service.fastpath import FastPath
from app.credential_service.metrics import Metrics
from app.credential_service.routes import receipts, urls, v1, v2, web
from app.credential_service.routes.readiness import readiness
from app.credential_service.service import CredentialService

log = get_logger("service")

DEV_BANNER = (
    "DEVELOPMENT MODE: callers without credentials are accepted as 'dev'%s. "
    "Never run this in production."
)


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
    source, policy = shared.keys(settings, keys), parts.policy(settings)
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
                if settings.public_key or settings.public_key_file or settings.keys
                else (", and the key pair is a throwaway one generated at start-up")
            )
            log.warning(DEV_BANNER, generated)
        async with AsyncExitStack() as stack:
            grants = parts.grants_ledger(settings, ledger)
            if grants is not None and grants is not ledger:
                stack.push_async_callback(grants.close)
            await stack.enter_async_context(source.watching())
            chain = await parts.caller_chain(settings, registry, clock, stack)
            throttle = parts.throttle(settings, registry, clock)
            stack.push_async_callback(throttle.limiter.close)
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

    routers = [
        probes.router(readiness, registry.registry if settings.metrics_enabled else None),
        v1.router,
        v2.router,
        urls.router,
        receipts.router,
        web.helper_router(),
    ]
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
    problems.install(app, hook=audit_refusal)
    openapi.install(app)
    for router in routers:
        app.include_router(router)
    return app
