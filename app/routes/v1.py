"""v1: ``{token, expire, signature, publicKey}`` for ImageKit client-side uploads."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app import schemas
from app.deps import CallerDep, ContextDep, ServiceDep
from app.openapi import problems

router = APIRouter(tags=["v1"])
PROBLEMS = problems(401, 422, 429, 502, 503)


@router.get("/v1/auth", responses=PROBLEMS)
@router.get("/auth", responses=PROBLEMS, summary="V1 Auth (ImageKit samples' path)")
async def v1_auth(
    caller: CallerDep,
    context: ContextDep,
    service: ServiceDep,
    response: Response,
    public_key: Annotated[str | None, Query(alias="publicKey", max_length=128)] = None,
) -> schemas.V1Credential:
    """A fresh single-use v1 credential. Any other query parameter (``t``) is ignored."""
    body = await service.v1(caller, context, public_key)
    response.headers["Cache-Control"] = "no-store"
    return schemas.V1Credential(**body)
