"""Signed delivery URLs: ``{url, expiresAt}`` for a private file the caller may read."""

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

router = APIRouter(tags=["urls"], dependencies=[Depends(no_store)])


@router.post("/v1/signed-url", responses=problems(400, 401, 403, 413, 415, 422, 429, 502, 503))
@issues("url", CredentialService.signed_url, fast_body=schemas.SignedUrlRequest)
async def signed_url(
    body: schemas.SignedUrlRequest,
    _json: JsonBodyDep,
    caller: CallerDep,
    context: ContextDep,
    service: ServiceDep,
) -> schemas.SignedUrl:
    """A URL of a stored file, signed in ImageKit's scheme (``ik-t``, ``ik-s``), valid for
    ``expiresIn`` seconds (the profile's ``url_lifetime`` at most), for a file within the
    folder the profile lets the caller read (its own ``{caller}`` folder by default)."""
    return await service.signed_url(caller, context, body)
