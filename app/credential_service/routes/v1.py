"""v1: ``{token, expire, signature, publicKey}`` for ImageKit client-side uploads."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.core.http.problems import no_store
from app.credential_service import schemas
from app.credential_service.dependencies import CallerDep, ContextDep, ServiceDep, issues
from app.credential_service.openapi import problems
from app.credential_service.service import CredentialService

router = APIRouter(tags=["v1"], dependencies=[Depends(no_store)])
PROBLEMS = problems(401, 403, 422, 429, 502, 503)


@router.get("/v1/auth", responses=PROBLEMS)
@router.get("/auth", responses=PROBLEMS, summary="V1 Auth (ImageKit samples' path)")
@issues("v1", CredentialService.v1)
async def v1_auth(
    caller: CallerDep,
    context: ContextDep,
    service: ServiceDep,
    query: Annotated[schemas.V1Query, Query()],
) -> schemas.V1Credential:
    """A fresh single-use v1 credential for a profile that allows v1 (its grant bound to the
    token). Any other query parameter (``t``) is ignored."""
    return await service.v1(caller, context, query)
