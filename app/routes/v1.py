"""v1: ``{token, expire, signature, publicKey}`` for ImageKit client-side uploads."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app import schemas
from app.deps import CallerDep, ContextDep, ServiceDep
from app.openapi import problems

router = APIRouter(tags=["v1"])
PROBLEMS = problems(401, 403, 422, 429, 502, 503)


@router.get("/v1/auth", responses=PROBLEMS)
@router.get("/auth", responses=PROBLEMS, summary="V1 Auth (ImageKit samples' path)")
async def v1_auth(
    caller: CallerDep,
    context: ContextDep,
    service: ServiceDep,
    response: Response,
    query: Annotated[schemas.V1Query, Query()],
) -> schemas.V1Credential:
    """A fresh single-use v1 credential for a profile that allows v1 (its grant bound to the
    token). Any other query parameter (``t``) is ignored."""
    body = await service.v1(caller, context, query.publicKey, query.profile)
    response.headers["Cache-Control"] = "no-store"
    return schemas.V1Credential(**body)
