"""Issuing credentials: the one place the rules run, whichever HTTP front calls it.

Both fronts (the FastAPI routes, which also make the OpenAPI document, and the fast path that
serves the same routes without FastAPI's per-request dependency machinery) authenticate,
throttle, ask the policy, sign and audit through this class, and answer with what it returns.
"""

import contextlib
from dataclasses import dataclass, replace
from typing import cast

from app.core import credentials, errors, signed_urls
from app.core.clock import LEEWAY_SECONDS, Clock, unix_now
from app.core.keysource import KeySource
from app.core.ledger import Ledger, LedgerUnavailable, credential_key
from app.core.ledger.records import Credential, Issued, Receipt
from app.core.logs import request_id_var
from app.credential_service import schemas
from app.credential_service.audit import Audit, AuditContext
from app.credential_service.callers import Authenticator, Caller, RequestInfo, authenticate
from app.credential_service.policy import FileRequest, Policy, Profile
from app.credential_service.ratelimit import Throttle


@dataclass(frozen=True)
class CredentialService:
    #: Where v2 uploads go (the ``uploadUrl`` of every v2 answer).
    upload_url_v2: str
    keys: KeySource
    policy: Policy
    clock: Clock
    authenticators: tuple[Authenticator, ...]
    audit: Audit
    throttle: Throttle
    #: Where v1 grants are recorded for the upload API: Redis, or the memory of a process that
    #: serves both (development mode); None when no upload API of ours can read them.
    ledger: Ledger | None = None
    #: The base of signed delivery URLs; None: not configured (the upload API is ImageKit's
    #: and no ``url_endpoint`` is set).
    url_endpoint: str | None = None

    async def caller(self, request: RequestInfo, context: AuditContext) -> Caller:
        """Who is asking (or a 401/502/503 problem); noted in the audit context."""
        caller = await authenticate(self.authenticators, request)
        context.caller, context.method = caller.identity, caller.method
        return caller

    async def _admit(
        self, version: str, caller: Caller, context: AuditContext, asked: str | None
    ) -> Profile:
        """Every request's first steps: one request charged to the caller's ``version`` limit,
        then the profile it asked for (or the default), which the caller must be allowed."""
        if (charging := self.throttle.request(version, caller.limit_key)) is not None:
            await charging
        context.profile = name = asked or self.policy.default_profile
        if not caller.may_use(name):
            raise errors.Forbidden("this caller may not use this profile")
        return self.policy.profile(name)

    async def v1(
        self, caller: Caller, context: AuditContext, query: schemas.V1Query
    ) -> schemas.V1Credential:
        """A v1 credential for a profile that allows v1, its grant recorded in the ledger."""
        profile = await self._admit("v1", caller, context, query.profile)
        policy, ring = self.policy, self.keys.ring
        if not profile.allow_v1:
            raise policy.v1_not_allowed(profile)
        pair = ring.signing if query.publicKey is None else ring.get(query.publicKey)
        if pair is None:
            raise errors.UnknownKey()
        # v1 declares no size: the byte quota is charged the most one upload may carry.
        if (
            charging := self.throttle.bytes("v1", caller.limit_key, profile.largest_size)
        ) is not None:
            await charging
        clock = self.clock()
        now = int(clock)
        cred = credentials.issue_v1(pair, now=now, ttl=profile.ttl)
        if self.ledger is not None:
            grant = policy.grant_v1(profile, caller=caller.identity)
            record = replace(grant, issued_ms=int(clock * 1000), request_id=request_id_var.get())
            key = credential_key("v1", pair.public_key, cred.token)
            try:
                epoch_ms = await self.ledger.record(
                    key, record.to_json(), profile.ttl + LEEWAY_SECONDS, now_ms=record.issued_ms
                )
                if epoch_ms > record.issued_ms:  # the ledger had forgotten: a new epoch began
                    record = replace(record, issued_ms=epoch_ms)
                    await self.ledger.record(
                        key, record.to_json(), profile.ttl + LEEWAY_SECONDS, now_ms=epoch_ms
                    )
            except LedgerUnavailable:
                raise errors.LedgerOutage(
                    "the grant of a v1 credential cannot be recorded now; retry shortly"
                ) from None
        self.audit.issued(context, expires_at=cred.expire)
        return {
            "token": cred.token,
            "expire": cred.expire,
            "signature": cred.signature,
            "publicKey": cred.public_key,
            "serverTime": now,
        }

    async def v2(
        self,
        caller: Caller,
        context: AuditContext,
        body: schemas.FileTokenRequest | schemas.PayloadTokenRequest,
    ) -> schemas.V2Token:
        """A v2 credential and its fields."""
        profile = await self._admit("v2", caller, context, body.profile)
        policy, ring = self.policy, self.keys.ring
        if isinstance(body, schemas.FileTokenRequest):
            context.file = {"fileName": body.fileName, "size": body.fileSize, "type": body.mimeType}
            request = FileRequest(body.fileName, body.fileSize, body.mimeType, body.folder)
            grant = policy.grant_file(profile, request, caller=caller.identity)
            pair, ttl, charge = ring.signing, grant.ttl, body.fileSize
        else:
            grant = policy.grant_payload(profile, body.uploadPayload, caller=caller.identity)
            context.file = {"fileName": grant.fields["fileName"]}
            found = ring.signing if body.publicKey is None else ring.get(body.publicKey)
            if found is None:
                raise errors.UnknownKey()
            pair, ttl, charge = found, min(body.expire, grant.ttl), grant.max_size
        if (charging := self.throttle.bytes("v2", caller.limit_key, charge)) is not None:
            await charging
        clock = self.clock()
        now = issued_at = int(clock)
        token = credentials.issue_v2(pair, grant.fields, now=now, ttl=ttl)
        if self.ledger is not None:
            epoch_ms = await self._record_issued(
                self.ledger, token, caller.identity, profile.name, int(clock * 1000), ttl
            )
            if epoch_ms > issued_at * 1000 + 999:  # the ledger had forgotten: a new epoch began
                issued_at = -(-epoch_ms // 1000)  # the epoch's second, or the next
                token = credentials.issue_v2(pair, grant.fields, now=issued_at, ttl=ttl)
                await self._record_issued(
                    self.ledger, token, caller.identity, profile.name, epoch_ms, ttl
                )
        self.audit.issued(context, expires_at=issued_at + ttl)
        return {
            "token": token,
            "expiresAt": issued_at + ttl,
            "uploadUrl": self.upload_url_v2,
            "fields": dict(grant.fields),
            "serverTime": now,
        }

    async def _record_issued(
        self, ledger: Ledger, token: str, caller: str, profile: str, issued_ms: int, ttl: int
    ) -> int:
        """Who a v2 credential was issued to, for its receipt; the ledger's epoch (0 when it
        cannot be reached). Not a condition of issuing: v2 credentials are issued while Redis
        is down (the upload API waits for it anyway), and such a credential's receipt then
        names nobody."""
        issued = Issued("v2", caller, profile, request_id_var.get(), issued_ms)
        try:
            return await ledger.record(
                credential_key("v2", token),
                issued.to_json(),
                ttl + LEEWAY_SECONDS,
                now_ms=issued_ms,
            )
        except LedgerUnavailable:  # the ledger logs the outage itself
            return 0

    async def receipt(self, caller: Caller, body: schemas.ReceiptRequest) -> schemas.ReceiptAnswer:
        """Whether, and for which file, a credential this service issued was used: for the
        caller it was issued to (the same identity), or for a caller given the right to read
        every receipt (``read_all_receipts``)."""
        if self.ledger is None:
            raise errors.ReceiptsUnavailable(
                "receipts are kept only when the upload API is upload-auth's own (this one "
                "uploads to ImageKit, which does not report uses back)"
            )
        version: Credential = "v2" if body.token.count(".") == 2 else "v1"  # a JWT, or a UUID
        if version == "v2":
            key = credential_key("v2", body.token)
        else:
            public_key = body.publicKey or self.keys.ring.signing.public_key
            key = credential_key("v1", public_key, body.token)
        try:
            grant, used = await self.ledger.lookup(key)
        except LedgerUnavailable:
            raise errors.LedgerOutage("receipts cannot be read now; retry shortly") from None
        receipt = None
        if used is not None:
            with contextlib.suppress(ValueError):
                receipt = Receipt.from_json(used)
        issued = receipt.issued if receipt is not None else None
        if issued is None and grant is not None:
            issued = Issued.from_record(version, grant)
        if issued is None:
            raise errors.ReceiptUnknown(
                "no credential with this token is remembered: not issued here, or older than "
                "the receipt retention"
            )
        if not caller.reads_all_receipts and issued.caller != caller.identity:
            raise errors.Forbidden("this credential was issued to another caller")
        if receipt is None:
            unused = {"used": False, "usedAt": None, "file": None, "eventId": None}
            return cast(schemas.ReceiptAnswer, issued.answer() | unused)
        return cast(schemas.ReceiptAnswer, receipt.answer() | {"used": True})

    async def signed_url(
        self, caller: Caller, context: AuditContext, body: schemas.SignedUrlRequest
    ) -> schemas.SignedUrl:
        """A signed delivery URL for a file the caller may read under the profile."""
        if self.url_endpoint is None:
            raise errors.UrlEndpointMissing(
                "set UPLOAD_AUTH_URL_ENDPOINT to where files are delivered (on ImageKit: "
                "https://ik.imagekit.io/YOUR_ID)"
            )
        profile = await self._admit("url", caller, context, body.profile)
        policy = self.policy
        path = policy.readable(profile, body.path, caller=caller.identity)
        context.file = {"filePath": path}
        now = unix_now(self.clock)
        expires_at = now + min(body.expiresIn, profile.url_lifetime)
        url = signed_urls.signed_url(self.keys.ring.signing, self.url_endpoint, path, expires_at)
        self.audit.issued(context, expires_at=expires_at)
        return {"url": url, "expiresAt": expires_at, "serverTime": now}
