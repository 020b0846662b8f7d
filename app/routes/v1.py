"""v1: ``{token, expire, signature, publicKey}`` for ImageKit client-side uploads."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app import credentials, errors, schemas
from app.clock import unix_now
from app.deps import AuditDep, CallerDep, ClockDep, ContextDep, KeysDep, SettingsDep, ThrottleDep
from app.openapi import problems

router = APIRouter(tags=["v1"])


@router.get("/v1/auth", responses=problems(401, 422, 429, 502, 503))
@router.get(
    "/auth", responses=problems(401, 422, 429, 502, 503), summary="V1 Auth (ImageKit samples' path)"
)
async def v1_auth(
    caller: CallerDep,
    context: ContextDep,
    throttle: ThrottleDep,
    audit: AuditDep,
    keys: KeysDep,
    settings: SettingsDep,
    clock: ClockDep,
    response: Response,
    public_key: Annotated[str | None, Query(alias="publicKey", max_length=128)] = None,
) -> schemas.V1Credential:
    """A fresh single-use v1 credential. Any other query parameter (``t``) is ignored."""
    await throttle.request("v1", caller.limit_key)
    pair = keys.signing if public_key is None else keys.get(public_key)
    if pair is None:
        raise errors.UnknownKey()
    now = unix_now(clock)
    cred = credentials.issue_v1(pair, now=now, ttl=settings.credential_ttl)
    audit.issued(context, expires_at=cred.expire)
    response.headers["Cache-Control"] = "no-store"
    return schemas.V1Credential(
        token=cred.token,
        expire=cred.expire,
        signature=cred.signature,
        publicKey=cred.public_key,
        serverTime=now,
    )
