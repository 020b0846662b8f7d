"""Receipts: whether, and for which file, a credential was used (``POST /v1/receipts``)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from app.core.http.problems import no_store
from app.core.logs import request_id_var
from app.credential_service import schemas
from app.credential_service.audit import AuditContext
from app.credential_service.callers import Caller, RequestInfo
from app.credential_service.dependencies import JsonBodyDep, ServiceDep
from app.credential_service.openapi import problems

router = APIRouter(tags=["receipts"], dependencies=[Depends(no_store)])


async def _caller(request: Request, service: ServiceDep) -> Caller:
    """The caller, authenticated as for credentials (no credential is issued: not audited)."""
    info = RequestInfo(
        request.headers, request.client.host if request.client else None, request_id_var.get()
    )
    return await service.caller(info, AuditContext("receipt"))


@router.post("/v1/receipts", responses=problems(400, 401, 403, 404, 413, 415, 422, 502, 503))
async def receipt(
    body: schemas.ReceiptRequest,
    _json: JsonBodyDep,
    caller: Annotated[Caller, Depends(_caller)],
    service: ServiceDep,
) -> schemas.ReceiptAnswer:
    """Who a credential was issued to (caller, profile, request id) and whether it was used,
    with the file it stored: for a back end that does not receive webhooks. Asked by the caller
    the credential was issued to, or by any API-key caller (a back end). Kept for
    ``receipt_retention`` after the upload."""
    return await service.receipt(caller, body)
