"""Request and response bodies of the credential service (camelCase on the wire, as ImageKit).

Requests are pydantic models, validated by both fronts through the same types. The credential
answers are ``TypedDict``s: ``CredentialService`` builds them, both fronts send them as they
are, and FastAPI documents them in the OpenAPI document.
"""

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, with_config
from typing_extensions import TypedDict

from app.core.keys import MAX_PUBLIC_KEY_LENGTH

#: A public key as a request may name one (the configured ones are checked by the settings).
PublicKey = Annotated[str, Field(max_length=MAX_PUBLIC_KEY_LENGTH)]
ProfileName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class V1Query(BaseModel):
    """``GET /v1/auth``'s query. Other parameters (the SDKs' cache-busting ``t``) are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    publicKey: PublicKey | None = Field(
        default=None, description="sign with this configured key pair"
    )
    profile: ProfileName | None = Field(
        default=None, description="the upload profile (default: the default profile)"
    )


@with_config(ConfigDict(extra="forbid"))
class V1Credential(TypedDict):
    """A v1 credential, shaped like the official SDK helpers' output plus ``publicKey``."""

    token: Annotated[str, Field(description="single-use token (UUID v4)")]
    expire: Annotated[
        int, Field(description="absolute Unix time in seconds when the signature expires")
    ]
    signature: Annotated[
        str, Field(description="lowercase hex HMAC-SHA1(private key, token + expire)")
    ]
    publicKey: Annotated[str, Field(description="public key of the pair that signed")]
    serverTime: Annotated[
        int, Field(description="the service's clock, Unix seconds, to spot clock skew")
    ]


class FileTokenRequest(Body):
    """v2: the file the client wants to upload; the policy decides the rest."""

    fileName: str = Field(min_length=1, max_length=1024, examples=["cat.png"])
    fileSize: int = Field(ge=1, le=2**53, examples=[48213])
    mimeType: str = Field(
        max_length=255,
        examples=["image/png"],
        description="as the browser reports it (File.type); empty when it knows none",
    )
    profile: ProfileName | None = Field(default=None, examples=["default"])
    folder: str | None = Field(
        default=None, max_length=1024, description="a folder within the profile's folder"
    )


class PayloadTokenRequest(Body):
    """v2 in ImageKit's documented shape: ``uploadPayload`` with every field as a string."""

    uploadPayload: dict[str, Any] = Field(max_length=32)
    expire: int = Field(ge=1, le=3599, description="requested lifetime in seconds")
    publicKey: PublicKey | None = None
    profile: ProfileName | None = None


def _request_shape(value: Any) -> str:
    return "payload" if isinstance(value, dict) and "uploadPayload" in value else "file"


#: ``POST /v2/token`` takes either shape; ``uploadPayload`` present means ImageKit's.
TokenRequest = Annotated[
    Annotated[FileTokenRequest, Tag("file")] | Annotated[PayloadTokenRequest, Tag("payload")],
    Discriminator(_request_shape),
]


@with_config(ConfigDict(extra="forbid"))
class V2Token(TypedDict):
    """A v2 credential and the exact form fields to send with it."""

    token: Annotated[
        str, Field(description="HS256 JWT, kid = public key; send as the form field token")
    ]
    expiresAt: Annotated[int, Field(description="absolute Unix time in seconds (the JWT's exp)")]
    uploadUrl: Annotated[str, Field(description="where to POST the multipart form")]
    fields: Annotated[
        dict[str, str], Field(description="form fields to send verbatim with file and token")
    ]
    serverTime: Annotated[
        int, Field(description="the service's clock, Unix seconds, to spot clock skew")
    ]


class SignedUrlRequest(Body):
    """A signed delivery URL for one stored file, valid for ``expiresIn`` seconds."""

    path: str = Field(
        min_length=1, max_length=1024, examples=["/users/alice/cat.png"], description="filePath"
    )
    expiresIn: int = Field(
        default=600, ge=1, le=2**31, description="seconds; the profile's url_lifetime at most"
    )
    profile: ProfileName | None = Field(default=None, examples=["default"])


@with_config(ConfigDict(extra="forbid"))
class SignedUrl(TypedDict):
    """A signed delivery URL (ImageKit's ``ik-t``/``ik-s``)."""

    url: Annotated[str, Field(description="the file's URL, signed; works until expiresAt")]
    expiresAt: Annotated[int, Field(description="absolute Unix time in seconds (ik-t)")]
    serverTime: Annotated[
        int, Field(description="the service's clock, Unix seconds, to spot clock skew")
    ]


class ReceiptRequest(Body):
    """Which credential: a v2 token, or a v1 token (with its public key when not the
    signing one)."""

    token: str = Field(min_length=1, max_length=4096, description="the credential's token")
    publicKey: str | None = Field(
        default=None, min_length=1, max_length=MAX_PUBLIC_KEY_LENGTH, description="v1 only"
    )


@with_config(ConfigDict(extra="forbid"))
class ReceiptFile(TypedDict):
    """The file a credential stored, as the upload API answered."""

    fileId: str
    versionId: str
    name: str
    filePath: str
    size: int
    url: str


@with_config(ConfigDict(extra="forbid"))
class ReceiptAnswer(TypedDict):
    """Who a credential was issued to, and whether (and for which file) it was used."""

    credential: Annotated[str, Field(description="v1, v2")]
    caller: str | None
    profile: str | None
    requestId: Annotated[str | None, Field(description="the credential request's request id")]
    issuedAt: Annotated[str | None, Field(description="ISO 8601")]
    used: bool
    usedAt: Annotated[str | None, Field(description="ISO 8601, when the upload was stored")]
    file: ReceiptFile | None
    eventId: Annotated[str | None, Field(description="the upload's webhook event id")]


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ProblemDocument(BaseModel):
    """RFC 9457 problem details, as every error of the credential service is sent."""

    type: str = Field(description="stable problem type, e.g. /problems/file-too-large")
    title: str
    status: int
    detail: str | None = None
    request_id: str | None = None
    errors: list[ValidationIssue] | None = Field(
        default=None, description="for /problems/invalid-request: what failed, never the input"
    )
