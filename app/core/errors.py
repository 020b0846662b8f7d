"""The problem hierarchy: every refusal the credential service can give, as a typed exception.

Pure: no web framework imports, so policy and signing code can raise these and be tested without
HTTP. ``app.core.http.problems`` renders them as RFC 9457 ``application/problem+json``. The
``slug`` of each class is part of the API: clients match on ``type``, so a slug never changes
once released. The docs/api.md lists them all.

``detail`` is written by us, never copied from the request: no submitted value, token, signature
or key is ever put in a problem.
"""

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

PROBLEM_BASE = "/problems/"


class Problem(Exception):
    """Base of every expected refusal; renders as a problem document."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal server error"

    #: Extension members of the problem document, beside type, title, status and detail.
    members: Mapping[str, Any] = {}

    def __init__(self, detail: str | None = None, *, headers: Mapping[str, str] | None = None):
        super().__init__(detail or self.title)
        self.detail = detail
        self.headers = dict(headers or {})

    @classmethod
    def type_uri(cls) -> str:
        """The stable ``type`` member for this problem."""
        return PROBLEM_BASE + cls.slug


# -- the request itself -----------------------------------------------------------------------


class BadRequest(Problem):
    status, slug, title = 400, "bad-request", "The request cannot be read"


class MalformedJson(Problem):
    status, slug, title = 400, "malformed-json", "The request body is not valid JSON"


class UnsupportedMediaType(Problem):
    status, slug, title = 415, "unsupported-media-type", "The request body must be application/json"


class BodyTooLarge(Problem):
    status, slug, title = 413, "body-too-large", "The request body is too large"


class InvalidRequest(Problem):
    status, slug, title = 422, "invalid-request", "The request does not match the schema"

    def __init__(self, issues: Iterable[Mapping[str, Any]] = ()) -> None:
        """``issues``: what failed (``loc``, ``msg``, ``type``), never the submitted values."""
        super().__init__()
        self.members = {"errors": list(issues)}


class NotFound(Problem):
    status, slug, title = 404, "not-found", "No such resource"


class MethodNotAllowed(Problem):
    status, slug, title = 405, "method-not-allowed", "Method not allowed on this resource"


# -- who is asking ----------------------------------------------------------------------------


class Unauthenticated(Problem):
    status, slug, title = 401, "unauthenticated", "Authentication is required"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="upload-auth"'})


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "Not allowed"


class V1NotAllowed(Problem):
    status, slug, title = 403, "v1-not-allowed", "This profile does not issue v1 credentials"


class RateLimited(Problem):
    status, slug, title = 429, "rate-limited", "Too many requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class AuthUpstreamError(Problem):
    status, slug, title = 502, "auth-upstream-error", "The session check gave no usable answer"


class AuthUpstreamUnavailable(Problem):
    status, slug, title = 503, "auth-upstream-unavailable", "The caller cannot be checked now"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": "5"})


# -- what they ask for: the policy ------------------------------------------------------------


class UnknownProfile(Problem):
    status, slug, title = 422, "unknown-profile", "No such upload profile"


class UnknownKey(Problem):
    status, slug, title = 422, "unknown-key", "No key pair with that public key"


class TypeNotAllowed(Problem):
    status, slug, title = 422, "type-not-allowed", "This file type may not be uploaded"


class TypeMismatch(Problem):
    status, slug, title = 422, "type-mismatch", "The MIME type does not match the file extension"


class FileTooLarge(Problem):
    status, slug, title = 422, "file-too-large", "The file is larger than this profile allows"


class InvalidFileName(Problem):
    status, slug, title = 422, "invalid-file-name", "The file name is not acceptable"


class InvalidFolder(Problem):
    status, slug, title = 422, "invalid-folder", "The folder is not acceptable"


class FieldNotAllowed(Problem):
    status, slug, title = 422, "field-not-allowed", "An upload field is not allowed by the policy"


# -- the service's own state ------------------------------------------------------------------


class LedgerOutage(Problem):
    status, slug, title = 503, "ledger-unavailable", "The credential ledger cannot be reached"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": "2"})


class UrlEndpointMissing(Problem):
    status, slug, title = 503, "url-endpoint-missing", "Signed URLs are not configured"


class ReceiptsUnavailable(Problem):
    status, slug, title = 503, "receipts-unavailable", "Receipts are not kept here"


class ReceiptUnknown(Problem):
    status, slug, title = 404, "receipt-unknown", "No such credential is remembered"


class NotReady(Problem):
    status, slug, title = 503, "not-ready", "The service is not ready"


ALL_PROBLEMS: tuple[type[Problem], ...] = (
    BadRequest,
    MalformedJson,
    UnsupportedMediaType,
    BodyTooLarge,
    InvalidRequest,
    NotFound,
    MethodNotAllowed,
    Unauthenticated,
    Forbidden,
    V1NotAllowed,
    RateLimited,
    AuthUpstreamError,
    AuthUpstreamUnavailable,
    UnknownProfile,
    UnknownKey,
    TypeNotAllowed,
    TypeMismatch,
    FileTooLarge,
    InvalidFileName,
    InvalidFolder,
    FieldNotAllowed,
    LedgerOutage,
    UrlEndpointMissing,
    NotReady,
    Problem,
)
