"""v2: a JWT scoped to one file, and the exact form fields to send with it."""

from fastapi import APIRouter, Response

from app import credentials, errors, schemas
from app.clock import unix_now
from app.deps import (
    AuditDep,
    CallerDep,
    ClockDep,
    ContextDep,
    KeysDep,
    PolicyDep,
    SettingsDep,
    ThrottleDep,
)
from app.openapi import problems
from app.policy import FileRequest

router = APIRouter(tags=["v2"])


@router.post("/v2/token", responses=problems(400, 401, 403, 413, 415, 422, 429, 502, 503))
async def v2_token(
    body: schemas.TokenRequest,
    caller: CallerDep,
    context: ContextDep,
    throttle: ThrottleDep,
    audit: AuditDep,
    keys: KeysDep,
    policy: PolicyDep,
    settings: SettingsDep,
    clock: ClockDep,
    response: Response,
) -> schemas.V2Token:
    """Ask for a v2 credential, by file (``fileName``, ``fileSize``, ``mimeType``) or in
    ImageKit's shape (``uploadPayload``, ``expire``, ``publicKey``)."""
    await throttle.request("v2", caller.limit_key)
    context.profile = name = body.profile or policy.default_profile
    if not caller.may_use(name):
        raise errors.Forbidden("this caller may not use this profile")
    profile = policy.profile(name)
    if isinstance(body, schemas.FileTokenRequest):
        context.file = {"fileName": body.fileName, "size": body.fileSize, "type": body.mimeType}
        grant = policy.grant_file(
            profile,
            FileRequest(body.fileName, body.fileSize, body.mimeType, body.folder),
            caller=caller.id,
        )
        pair, ttl, charge = keys.signing, grant.ttl, body.fileSize
    else:
        grant = policy.grant_payload(profile, body.uploadPayload, caller=caller.id)
        context.file = {"fileName": grant.fields["fileName"]}
        found = keys.signing if body.publicKey is None else keys.get(body.publicKey)
        if found is None:
            raise errors.UnknownKey()
        pair, ttl, charge = found, min(body.expire, grant.ttl), grant.max_size
    await throttle.bytes(caller.limit_key, charge)
    now = unix_now(clock)
    token = credentials.issue_v2(pair, grant.fields, now=now, ttl=ttl)
    audit.issued(context, expires_at=now + ttl)
    response.headers["Cache-Control"] = "no-store"
    return schemas.V2Token(
        token=token,
        expiresAt=now + ttl,
        uploadUrl=settings.upload_url_v2,
        fields=dict(grant.fields),
        serverTime=now,
    )
