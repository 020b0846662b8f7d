"""Receipts: the credential service and the upload API in one process (as ``upload-auth dev``
and any deployment sharing a ledger run them). Who a credential was issued to travels with the
upload into its webhook event, and ``POST /v1/receipts`` answers whether, and for which file, a
credential was used: to the caller it was issued to, or to a back end (an API key)."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from app.core.settings import (
    ApiKeyConfig,
    CallersConfig,
    ForwardAuthConfig,
    ProfileConfig,
    Settings,
)
from app.credential_service.callers.api_keys import hash_api_key, new_api_key
from app.dev import serve_both
from tests.support.apps import asgi_client
from tests.support.receiver import Receiver, receiving
from tests.support.upstreams import Upstream, upstream_server
from tests.support.webhooks import python_unwrap

pytestmark = pytest.mark.anyio

BACKEND_KEY = new_api_key()
OTHER_BACKEND_KEY = new_api_key()
#: An API key whose name is a user's session id: another caller all the same.
NAMESAKE_KEY = new_api_key()
PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)


@pytest.fixture
def upstream() -> Any:
    with upstream_server() as running:
        yield running


@pytest.fixture
def receiver() -> Any:
    with receiving() as running:
        yield running


@asynccontextmanager
async def both(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(serve_both(settings), "http://auth.test") as http:
        yield http


@pytest.fixture
def settings(
    hook_settings: Callable[..., Settings],
    upstream: Upstream,
    receiver: Receiver,
) -> Settings:
    """Production callers: users by the app's session (forward auth: alice, bob), the app's
    back end by API key with the right to read every receipt, another back end without it; a
    webhook to the receiver."""
    hooked = hook_settings(receiver.url)
    callers = CallersConfig(
        forward=ForwardAuthConfig(url=upstream.url + "/session", timeout=2),
        api_keys=[
            ApiKeyConfig(name="backend", hash=hash_api_key(BACKEND_KEY), read_all_receipts=True),
            ApiKeyConfig(name="reports", hash=hash_api_key(OTHER_BACKEND_KEY)),
            ApiKeyConfig(name="alice", hash=hash_api_key(NAMESAKE_KEY)),
        ],
    )
    return hooked.model_copy(
        update={
            "dev_mode": False,
            "callers": callers,
            "profiles": {"default": ProfileConfig(allow_v1=True)},
            "upload_api_url": "http://auth.test",
            "cors_origins": ["http://app.test"],
        }
    )


ALICE = {"Cookie": "session=alice"}
BOB = {"Cookie": "session=bob"}
BACKEND = {"Authorization": f"Bearer {BACKEND_KEY}"}
OTHER_BACKEND = {"Authorization": f"Bearer {OTHER_BACKEND_KEY}"}


async def receipt(http: httpx.AsyncClient, headers: dict[str, str], **body: str) -> httpx.Response:
    return await http.post("/v1/receipts", json=body, headers=headers)


async def test_a_v2_credentials_receipt_names_its_caller_and_its_file(
    settings: Settings, receiver: Receiver, webhook_secret: str
) -> None:
    async with both(settings) as http:
        issued = await http.post(
            "/v2/token",
            json={"fileName": "cat.png", "fileSize": len(PNG), "mimeType": "image/png"},
            headers=ALICE,
        )
        assert issued.status_code == 200, issued.text
        token, request_id = issued.json()["token"], issued.headers["x-request-id"]
        before = await receipt(http, ALICE, token=token)
        assert before.status_code == 200, before.text
        assert before.json() == {
            "credential": "v2",
            "caller": "session:alice",
            "profile": "default",
            "requestId": request_id,
            "issuedAt": before.json()["issuedAt"],
            "used": False,
            "usedAt": None,
            "file": None,
            "eventId": None,
        }
        fields = issued.json()["fields"]
        uploaded = await http.post(
            "/api/v2/files/upload",
            data={**fields, "token": token},
            files={"file": ("cat.png", PNG, "image/png")},
        )
        assert uploaded.status_code == 200, uploaded.text
        after = (await receipt(http, BACKEND, token=token)).json()  # a back end may ask too
        (event,) = await asyncio.to_thread(receiver.wait_for, 1)
    assert after["used"] is True
    assert after["caller"] == "session:alice"
    assert after["file"]["fileId"] == uploaded.json()["fileId"]
    assert after["file"]["filePath"] == uploaded.json()["filePath"]
    assert after["eventId"] == event.headers["webhook-id"]
    verified = python_unwrap(event, webhook_secret)
    receipt_in_event = verified.to_dict()["receipt"]
    assert receipt_in_event["caller"] == "session:alice"
    assert receipt_in_event["credential"] == "v2"
    assert receipt_in_event["requestId"] == request_id
    assert receipt_in_event["profile"] == "default"


async def test_a_v1_credentials_receipt(settings: Settings) -> None:
    async with both(settings) as http:
        issued = await http.get("/v1/auth", headers=ALICE)
        assert issued.status_code == 200, issued.text
        credential = issued.json()
        uploaded = await http.post(
            "/api/v1/files/upload",
            data={
                "fileName": "v1.png",
                "publicKey": credential["publicKey"],
                "signature": credential["signature"],
                "expire": str(credential["expire"]),
                "token": credential["token"],
            },
            files={"file": ("v1.png", PNG, "image/png")},
        )
        assert uploaded.status_code == 200, uploaded.text
        answer = (await receipt(http, ALICE, token=credential["token"])).json()
    assert answer["credential"] == "v1"
    assert answer["caller"] == "session:alice"
    assert answer["used"] is True
    assert answer["file"]["name"] == uploaded.json()["name"]


async def test_receipts_are_for_their_caller_or_a_caller_with_the_role(
    settings: Settings,
) -> None:
    """A receipt answers the identity the credential was issued to, and a caller given
    `read_all_receipts`; another user, or a back end without the role, gets 403."""
    async with both(settings) as http:
        issued = await http.post(
            "/v2/token",
            json={"fileName": "cat.png", "fileSize": 10, "mimeType": "image/png"},
            headers=ALICE,
        )
        token = issued.json()["token"]
        other = await receipt(http, BOB, token=token)
        other_backend = await receipt(http, OTHER_BACKEND, token=token)
        namesake = await receipt(http, {"Authorization": f"Bearer {NAMESAKE_KEY}"}, token=token)
        with_role = await receipt(http, BACKEND, token=token)
        nobody = await receipt(http, {}, token=token)
        unknown = await receipt(http, BACKEND, token="a.b.c")
        unknown_v1 = await receipt(http, BACKEND, token="not-a-token")
        not_json = await http.post("/v1/receipts", content=b"token=x", headers=BACKEND)
    assert other.status_code == 403
    assert other_backend.status_code == 403
    assert namesake.status_code == 403  # the API key named alice is not the session alice
    assert with_role.status_code == 200
    assert with_role.json()["caller"] == "session:alice"
    assert nobody.status_code == 401
    assert unknown.status_code == 404
    assert unknown.json()["type"].endswith("/receipt-unknown")
    assert unknown_v1.status_code == 404
    assert not_json.status_code == 415
