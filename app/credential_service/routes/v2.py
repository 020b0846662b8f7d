"""v2: a JWT scoped to one file, and the exact form fields to send with it."""

from fastapi import APIRouter, Depends

from app.core.http.problems import no_store
from app.credential_service import schemas
from app.credential_service.dependencies import (
    CallerDep,
    ContextDep,
    JsonBodyDep,
    ServiceDep,
    issues,
)
from app.credential_service.openapi import problems
from app.credential_service.service import CredentialService

router = APIRouter(tags=["v2"], dependencies=[Depends(no_store)])


@router.post("/v2/token", responses=problems(400, 401, 403, 413, 415, 422, 429, 502, 503))
@issues("v2", CredentialService.v2, fast_body=schemas.FileTokenRequest)
async def v2_token(
    body: schemas.TokenRequest,
    _json: JsonBodyDep,
    caller: CallerDep,
    context: ContextDep,
    service: ServiceDep,
) -> schemas.V2Token:
    """Ask for a v2 credential, by file (``fileName``, ``fileSize``, ``mimeType``) or in
    ImageKit's shape (``uploadPayload``, ``expire``, ``publicKey``)."""
    return await service.v2(caller, context, body)
