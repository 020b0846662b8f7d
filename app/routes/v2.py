"""v2: a JWT scoped to one file, and the exact form fields to send with it."""

from fastapi import APIRouter, Response

from app import schemas
from app.deps import CallerDep, ContextDep, JsonBodyDep, ServiceDep
from app.openapi import problems

router = APIRouter(tags=["v2"])


@router.post("/v2/token", responses=problems(400, 401, 403, 413, 415, 422, 429, 502, 503))
async def v2_token(
    body: schemas.TokenRequest,
    _json: JsonBodyDep,
    caller: CallerDep,
    context: ContextDep,
    service: ServiceDep,
    response: Response,
) -> schemas.V2Token:
    """Ask for a v2 credential, by file (``fileName``, ``fileSize``, ``mimeType``) or in
    ImageKit's shape (``uploadPayload``, ``expire``, ``publicKey``)."""
    grant = await service.v2(caller, context, body)
    response.headers["Cache-Control"] = "no-store"
    return schemas.V2Token(**grant)
