"""v2: a JWT scoped to one file, and the exact form fields to send with it."""

from fastapi import APIRouter, Response

from app import credentials, errors, schemas
from app.clock import unix_now
from app.deps import CallerDep, ClockDep, KeysDep, PolicyDep, SettingsDep
from app.openapi import problems
from app.policy import FileRequest

router = APIRouter(tags=["v2"])


@router.post("/v2/token", responses=problems(400, 401, 403, 413, 415, 422))
async def v2_token(
    body: schemas.TokenRequest,
    caller: CallerDep,
    keys: KeysDep,
    policy: PolicyDep,
    settings: SettingsDep,
    clock: ClockDep,
    response: Response,
) -> schemas.V2Token:
    """Ask for a v2 credential, by file (``fileName``, ``fileSize``, ``mimeType``) or in
    ImageKit's shape (``uploadPayload``, ``expire``, ``publicKey``)."""
    name = body.profile or policy.default_profile
    if not caller.may_use(name):
        raise errors.Forbidden("this caller may not use this profile")
    profile = policy.profile(name)
    if isinstance(body, schemas.FileTokenRequest):
        request = FileRequest(body.fileName, body.fileSize, body.mimeType, body.folder)
        grant = policy.grant_file(profile, request, caller=caller.id)
        pair, ttl = keys.signing, grant.ttl
    else:
        grant = policy.grant_payload(profile, body.uploadPayload, caller=caller.id)
        found = keys.signing if body.publicKey is None else keys.get(body.publicKey)
        if found is None:
            raise errors.UnknownKey()
        pair, ttl = found, min(body.expire, grant.ttl)
    now = unix_now(clock)
    token = credentials.issue_v2(pair, grant.fields, now=now, ttl=ttl)
    response.headers["Cache-Control"] = "no-store"
    return schemas.V2Token(
        token=token,
        expiresAt=now + ttl,
        uploadUrl=settings.upload_url_v2,
        fields=dict(grant.fields),
    )
