"""The edges against the production set-up: the credential service and two upload-API replicas
as processes sharing one redis-server, users by the app's session (forward auth to a real
session check), back ends by API key. An API key never reaches the session check however it is
spelled, and a receipt answers only its own caller or a back end given the role, across
replicas (#27)."""

import base64
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest

from app.credential_service.callers.api_keys import hash_api_key, new_api_key
from tests.support.apps import new_private_key, new_public_key
from tests.support.samples import png
from tests.support.servers import clean_env, redis_server, running
from tests.support.upstreams import Upstream, upstream_server

pytestmark = pytest.mark.e2e

READER, OTHER, NAMESAKE = new_api_key(), new_api_key(), new_api_key()


@dataclass
class Deployment:
    service: str
    replicas: list[str]
    upstream: Upstream


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("edges")
    with ExitStack() as stack:
        upstream = stack.enter_context(upstream_server())
        redis_url = stack.enter_context(redis_server(root / "redis.log"))
        env = clean_env(
            IMAGEKIT_PUBLIC_KEY=new_public_key(),
            IMAGEKIT_PRIVATE_KEY=new_private_key(),
            UPLOAD_AUTH_REDIS_URL=redis_url,
            UPLOAD_AUTH_STORAGE_DIR=str(root / "store"),
            UPLOAD_AUTH_MEDIA_WORKERS="0",
            UPLOAD_AUTH_CALLERS=json.dumps(
                {
                    "forward": {"url": upstream.url + "/session", "forward_authorization": True},
                    "api_keys": [
                        {"name": "app", "hash": hash_api_key(READER), "read_all_receipts": True},
                        {"name": "reports", "hash": hash_api_key(OTHER)},
                        {"name": "alice", "hash": hash_api_key(NAMESAKE)},
                    ],
                }
            ),
            UPLOAD_AUTH_PROFILES=json.dumps({"default": {"folder": "/users/{caller}"}}),
        )
        replicas = [
            stack.enter_context(
                running(["upload-api"], env=env, log=root / f"api-{n}.log", ready="/readyz")
            ).url
            for n in range(2)
        ]
        service = stack.enter_context(
            running(
                ["serve"],
                env={**env, "UPLOAD_AUTH_UPLOAD_API_URL": replicas[0]},
                log=root / "service.log",
            )
        )
        yield Deployment(service.url, replicas, upstream)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize(
    "spelled",
    [
        lambda key: f"Bearer\t{key}",
        lambda key: f"Basic {base64.b64encode(key.encode()).decode().rstrip('=')}",
        lambda key: f'Digest username="{key}", realm="app"',
        lambda key: f"Bearer x, Bearer {key.upper()}",
        lambda key: f"Token x{key}",
        lambda key: base64.urlsafe_b64encode(f"user:{key}".encode()).decode(),
    ],
)
def test_an_api_key_in_any_spelling_never_reaches_the_session_check(
    deployment: Deployment, spelled: Callable[[str], str]
) -> None:
    """With Authorization forwarded, a signed-in user's request carrying a key is refused with
    401 and the app's session check never receives it."""
    before = len(deployment.upstream.requests)
    value = spelled(READER)
    answer = httpx.post(
        deployment.service + "/v2/token",
        json={"fileName": "a.png", "fileSize": 10, "mimeType": "image/png"},
        headers={"Cookie": "session=alice", "Authorization": value},
    )
    assert answer.status_code == 401
    assert deployment.upstream.requests[before:] == []


def test_a_receipt_answers_its_own_caller_or_the_role_across_replicas(
    deployment: Deployment,
) -> None:
    """session:alice uploads through the second replica; her receipt answers her and the back
    end with `read_all_receipts`, and refuses another back end and the API key named alice."""
    issued = httpx.post(
        deployment.service + "/v2/token",
        json={"fileName": "me.png", "fileSize": len(png()), "mimeType": "image/png"},
        headers={"Cookie": "session=alice"},
    )
    assert issued.status_code == 200, issued.text
    fields, token = issued.json()["fields"], issued.json()["token"]
    assert fields["folder"] == "/users/session-alice"
    uploaded = httpx.post(
        deployment.replicas[1] + "/api/v2/files/upload",
        data={**fields, "token": token},
        files={"file": ("me.png", png())},
    )
    assert uploaded.status_code == 200, uploaded.text

    def receipt(headers: dict[str, str]) -> httpx.Response:
        return httpx.post(
            deployment.service + "/v1/receipts", json={"token": token}, headers=headers
        )

    own, reader = receipt({"Cookie": "session=alice"}), receipt(bearer(READER))
    assert (own.status_code, reader.status_code) == (200, 200)
    assert reader.json()["caller"] == "session:alice"
    assert reader.json()["file"]["fileId"] == uploaded.json()["fileId"]
    assert receipt(bearer(OTHER)).status_code == 403
    assert receipt(bearer(NAMESAKE)).status_code == 403
