"""What every upload and every served file works with, made once at start-up
(``app.upload_api.parts``)."""

from dataclasses import dataclass, field
from typing import cast

from starlette.requests import Request

from app.core.clock import Clock
from app.core.imagekit.rules import PlanLimits
from app.core.keysource import KeySource
from app.core.ledger import Ledger
from app.core.webhooks.sender import WebhookSender
from app.upload_api.admission import InFlight
from app.upload_api.delivery import Renders
from app.upload_api.fetch import RemoteFiles
from app.upload_api.storage import Storage
from app.upload_api.workers import MediaWorkers


@dataclass(frozen=True)
class Delivery:
    """How ``/files`` renders transformations (the ``delivery_*`` settings)."""

    named: dict[str, str] = field(default_factory=dict)
    signed_transformations: bool = False
    auto_avif: bool = False
    cache_size: int = 2 * 1024**3


@dataclass(frozen=True)
class UploadContext:
    keys: KeySource
    clock: Clock
    ledger: Ledger
    storage: Storage
    limits: PlanLimits
    #: Accept v1 signatures with no grant in the ledger (development mode, or the operator's
    #: explicit, ImageKit-compatible and unsafe choice).
    accept_unbound_v1: bool = False
    #: The credential lifetime the service is configured with: a v1 credential without a grant
    #: record is taken to have been issued at ``expire`` minus this.
    credential_ttl: int = 1800
    #: Unauthenticated bytes in flight in this process.
    in_flight: InFlight = field(default_factory=lambda: InFlight(1024**3))
    #: Where files are read for their metadata (none: metadata left out).
    media: MediaWorkers = field(default_factory=lambda: MediaWorkers(0, timeout=1, memory=0))
    #: Fetches ``file`` given as a URL (public addresses only, unless allowed).
    remote: RemoteFiles = field(default_factory=RemoteFiles)
    #: Where upload events go (None: no webhook configured).
    events: WebhookSender | None = None
    #: Seconds a credential's receipt is kept after its upload.
    receipt_retention: int = 86400
    delivery: Delivery = field(default_factory=Delivery)
    #: Renders of transformed images in progress in this process.
    renders: Renders = field(default_factory=Renders)


def context_of(request: Request) -> UploadContext:
    """The upload context the lifespan put in the request's state."""
    return cast(UploadContext, request.state.upload)
