"""v1: ``{token, expire, signature, publicKey}`` for ImageKit client-side uploads."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app import credentials, errors, schemas
from app.clock import unix_now
from app.deps import CallerDep, ClockDep, KeysDep, SettingsDep
from app.openapi import problems

router = APIRouter(tags=["v1"])


@router.get("/v1/auth", responses=problems(401, 422))
@router.get("/auth", responses=problems(401, 422), summary="V1 Auth (ImageKit samples' path)")
async def v1_auth(
    caller: CallerDep,  # noqa: ARG001 - authenticates; v1 credentials bind nothing of the caller
    keys: KeysDep,
    settings: SettingsDep,
    clock: ClockDep,
    response: Response,
    public_key: Annotated[str | None, Query(alias="publicKey", max_length=128)] = None,
) -> schemas.V1Credential:
    """A fresh single-use v1 credential. Any other query parameter (``t``) is ignored."""
    pair = keys.signing if public_key is None else keys.get(public_key)
    if pair is None:
        raise errors.UnknownKey()
    cred = credentials.issue_v1(pair, now=unix_now(clock), ttl=settings.credential_ttl)
    response.headers["Cache-Control"] = "no-store"
    return schemas.V1Credential(
        token=cred.token, expire=cred.expire, signature=cred.signature, publicKey=cred.public_key
    )
