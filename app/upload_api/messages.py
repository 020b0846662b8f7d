"""ImageKit's wire format for errors: ``{"message", "help"}`` with ImageKit's status codes and
messages, because the official SDKs parse and surface them.

Messages marked ImageKit are quoted from its OpenAPI spec and issue threads (see
``shared/spec/imagekit-upload-protocol.md``); the others cover cases ImageKit does not document
and follow its phrasing. Pure: no framework imports.
"""

from typing import Final

#: Where the message is explained: this is upload-auth's self-hosted upload API, not ImageKit's
#: (whose ``help`` names its support address). The ``message`` texts stay ImageKit's.
HELP: Final = (
    "This is upload-auth's self-hosted upload API: its docs/api.md (Upload API) explains every "
    "message."
)

#: ImageKit's boolean form fields ("true" / "false" on the wire).
BOOLEAN_FIELDS: Final = (
    "useUniqueFileName",
    "isPrivateFile",
    "isPublished",
    "overwriteFile",
    "overwriteAITags",
    "overwriteTags",
    "overwriteCustomMetadata",
)


class UploadError(Exception):
    """A refused upload, rendered as ImageKit renders it."""

    def __init__(self, status: int, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        #: A stable short name for logs and metrics (the message may carry the client's token).
        self.reason = reason
        #: Refused before the whole body was read: the connection must close, or the server
        #: would go on reading (and discarding) the rest of a possibly huge body.
        self.body_unread = False
        #: Seconds after which a retry may succeed (sent as Retry-After), if any.
        self.retry_after: int | None = None

    def body(self) -> dict[str, str]:
        return {"message": self.message, "help": HELP}


def _error(status: int, message: str, reason: str) -> UploadError:
    return UploadError(status, message, reason=reason)


# -- authentication (ImageKit) ----------------------------------------------------------------
def both_auth_v1() -> UploadError:
    return _error(
        400,
        "Your request contains both signature and basic auth parameter. Use only "
        "one method, you might be exposing your private API key.",
        "both-auth",
    )


def both_auth_v2() -> UploadError:
    return _error(
        400,
        "Your request contains both token and basic auth parameter. Use only one "
        "method, you might be exposing your private API key.",
        "both-auth",
    )


def no_auth() -> UploadError:
    return _error(401, "Your request does not contain private API key.", "no-auth")


def cannot_authenticate() -> UploadError:
    return _error(403, "Your account cannot be authenticated.", "unknown-key")


def invalid_expire() -> UploadError:
    return _error(
        400,
        "Your request contains invalid expire parameter. Expire parameter should "
        "be a Unix time in less than 1 hour into the future.",
        "invalid-expire",
    )


#: Tokens longer than this (a v2 JWT) are not repeated whole in a message: it would land in
#: client exception text and logs. A v1 token (a UUID) is repeated, as ImageKit does.
MAX_SHOWN_TOKEN: Final = 64


def _shown(token: str) -> str:
    return token if len(token) <= MAX_SHOWN_TOKEN else token[:12] + "..."


def token_used(token: str) -> UploadError:
    # ImageKit repeats the (already burned, now worthless) token; the official SDKs show this.
    return _error(
        400,
        f"The token with value '{_shown(token)}' has been used before. We suggest using "
        "V4 UUIDs, or another random string with enough entropy to avoid collisions.",
        "token-used",
    )


def token_forgotten(token: str) -> UploadError:
    """Issued before the ledger's epoch: it may have been used before the ledger lost its data."""
    return _error(
        400,
        f"The token with value '{_shown(token)}' has been used before. This upload API lost "
        "its record of used tokens after this credential was issued and cannot tell whether "
        "it was used: fetch a new credential and upload again.",
        "token-before-epoch",
    )


def unbound_v1() -> UploadError:
    return _error(
        403,
        "Your request contains a v1 signature that upload-auth issued no grant for. This "
        "upload API accepts only v1 credentials from upload-auth's /v1/auth (their grant is "
        "shared through Redis, or the process serving both); set "
        "UPLOAD_AUTH_ACCEPT_UNBOUND_V1=true to accept any signature made with the private key, "
        "as ImageKit does.",
        "unbound-v1",
    )


def outside_grant(parameter: str, limit: str, reason: str) -> UploadError:
    """A v1 upload outside what its credential was issued for; ``limit`` names the limit."""
    return _error(400, f"Your request contains invalid {parameter} parameter. {limit}", reason)


def invalid_signature() -> UploadError:
    # ImageKit answers 400; its exact message is not documented.
    return _error(400, "Your request contains invalid signature parameter.", "invalid-signature")


def missing_parameter(name: str) -> UploadError:
    return _error(400, f"Your request is missing {name} parameter.", f"missing-{name}")


# -- v2 (ImageKit) ----------------------------------------------------------------------------
def invalid_payload() -> UploadError:
    return _error(
        400,
        "Your request contains invalid payload. It does not match with the "
        "payload used to generate token.",
        "invalid-payload",
    )


def expired_token() -> UploadError:
    return _error(400, "Your request contains expired token.", "expired-token")


def invalid_token() -> UploadError:
    return _error(400, "Your request has invalid token.", "invalid-token")


# -- the file (ImageKit) ----------------------------------------------------------------------
def file_too_large() -> UploadError:
    return _error(
        400,
        "Your request contains invalid file parameter. The file size exceeds limits.",
        "file-too-large",
    )


def checks_syntax() -> UploadError:
    return _error(
        400, "Your request contains invalid syntax for the checks parameter.", "checks-syntax"
    )


def checks_failed() -> UploadError:
    return _error(400, "Your request failed 'checks' validation.", "checks-failed")


def name_clash() -> UploadError:
    return _error(
        400,
        "A file with the same name already exists at the exact location. We "
        "could not overwrite it because both overwriteFile and useUniqueFileName are "
        "set to false.",
        "name-clash",
    )


# -- not documented by ImageKit; same phrasing ------------------------------------------------
def invalid_transformation() -> UploadError:
    return _error(
        400,
        "The file could not be uploaded because the transformation field is invalid.",
        "invalid-transformation",
    )


def invalid_parameter(name: str) -> UploadError:
    return _error(400, f"Your request contains invalid {name} parameter.", f"invalid-{name}")


def unsupported_file_type() -> UploadError:
    return _error(
        400,
        "Your request contains invalid file parameter. This file type is not allowed.",
        "file-type",
    )


def content_mismatch() -> UploadError:
    return _error(
        400,
        "Your request contains invalid file parameter. The file's content does "
        "not match its extension.",
        "content-mismatch",
    )


def remote_fetch_failed(why: str) -> UploadError:
    return _error(
        400,
        f"Your request contains invalid file parameter. The file could not be fetched from its "
        f"URL: {why}.",
        "remote-fetch",
    )


def remote_address_refused() -> UploadError:
    return _error(
        400,
        "Your request contains invalid file parameter. The file's URL points to an address "
        "that is not public; this upload API fetches only from the public internet and the "
        "networks its operator allows.",
        "remote-address",
    )


def malformed_body() -> UploadError:
    return _error(400, "Your request is not a valid multipart/form-data body.", "malformed-body")


def busy() -> UploadError:
    """Too many bytes of not-yet-authenticated uploads in flight in this process."""
    error = _error(
        503,
        "The upload API is receiving too many uploads right now. Please retry shortly.",
        "busy",
    )
    error.retry_after = 2
    return error


def storage_failed() -> UploadError:
    """The file system refused (full, read-only, gone): the server's trouble, not the client's."""
    error = _error(
        503, "The upload API cannot store files right now. Please retry.", "storage-error"
    )
    error.retry_after = 5
    return error


def events_unavailable() -> UploadError:
    """The upload's event cannot be queued (the outbox full, or not answering): refused rather
    than stored without it."""
    error = _error(
        503,
        "The upload API cannot queue upload events right now. Please retry.",
        "events-unavailable",
    )
    error.retry_after = 30
    return error


def store_unavailable() -> UploadError:
    return _error(
        503, "The upload API cannot check tokens right now. Please retry.", "token-store-down"
    )


# -- delivery of private files (signed URLs) --------------------------------------------------
def unsigned_private_url() -> UploadError:
    return _error(
        401,
        "This file is private: its URL must be signed (ik-s, and ik-t for an expiring URL).",
        "url-unsigned",
    )


def invalid_url_signature() -> UploadError:
    return _error(401, "The URL's signature (ik-s) is not valid for this URL.", "url-invalid")


def expired_url() -> UploadError:
    return _error(401, "The signed URL has expired (ik-t is in the past).", "url-expired")


def file_not_found() -> UploadError:
    """No file at that path (or no thumbnail can be made of it)."""
    return _error(404, "The requested file does not exist.", "file-not-found")


def bad_transformation(detail: str, *, unsupported: bool = False) -> UploadError:
    """A delivery URL's transformation refused (``detail`` names the parameter and why)."""
    reason = "transformation-unsupported" if unsupported else "transformation-invalid"
    return _error(400, detail, reason)


def not_transformable() -> UploadError:
    return _error(
        400,
        "This file cannot be transformed: transformations apply to images this server can "
        "decode (and ImageKit's thumbnail to videos).",
        "transformation-unsupported",
    )


# -- anything else the upload API answers (same shape: the SDKs parse every error body) ------
def no_such_route() -> UploadError:
    return _error(404, "The requested resource does not exist.", "not-found")


def method_not_allowed() -> UploadError:
    return _error(405, "This method is not allowed on this resource.", "method-not-allowed")


def not_ready(why: str) -> UploadError:
    """Readiness: the upload API cannot serve uploads now (``why`` is ours, secret-free)."""
    return _error(503, f"The upload API is not ready: {why}.", "not-ready")


def internal_error() -> UploadError:
    """A bug: logged with its traceback, answered without a word of it."""
    return _error(500, "The upload API hit an unexpected error. Please retry.", "internal-error")
