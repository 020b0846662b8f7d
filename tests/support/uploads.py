"""Uploads as clients make them: credentials signed as the credential service signs them, form
parts, server-side uploads, and ImageKit's error body."""

import base64
import json
import secrets
import shutil
import subprocess
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx

from app.core import credentials
from app.core.imagekit.rules import PlanLimits
from app.core.keys import KeyPair
from app.core.settings import Settings
from app.credential_service.policy import FileRequest, Policy, seed_profile
from app.upload_api.app import create_upload_app
from app.upload_api.storage import LocalStorage
from tests.support.apps import FakeClock, asgi_client
from tests.support.samples import png, v1_signature
from tests.support.servers import unavailable

V1 = "/api/v1/files/upload"


def leftovers(storage_dir: Path) -> list[Path]:
    """What uploads left in the storage's temporary area: none once every upload has finished."""
    return LocalStorage(storage_dir).leftovers()


V2 = "/api/v2/files/upload"


HELP = (
    "This is upload-auth's self-hosted upload API: its docs/api.md (Upload API) explains every "
    "message."
)


def upload_client(
    settings: Settings, clock: FakeClock
) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    """The upload API with these settings, in-process, lifespan included."""
    return asgi_client(create_upload_app(settings, clock=clock), "http://upload.test")


def v1_fields(
    pair: KeyPair, clock: FakeClock, *, ttl: int = 1800, token: str | None = None, **extra: str
) -> dict[str, str]:
    """A v1 credential as form fields, signed as the credential service signs."""
    cred = credentials.issue_v1(pair, now=int(clock()), ttl=ttl)
    token = token or cred.token
    expire = cred.expire
    return {
        "publicKey": pair.public_key,
        "token": token,
        "expire": str(expire),
        "signature": v1_signature(pair.private_key, token, expire),
        **extra,
    }


def v2_fields(
    pair: KeyPair,
    clock: FakeClock,
    data: bytes,
    name: str = "cat.png",
    mime: str = "image/png",
    ttl: int = 600,
) -> dict[str, str]:
    """Fields plus token, exactly as POST /v2/token returns them for this file."""
    policy = Policy({"default": seed_profile(PlanLimits.for_plan("free"), 1800)}, "default")
    grant = policy.grant_file(
        policy.profile(None), FileRequest(name, len(data), mime), caller="dev"
    )
    token = credentials.issue_v2(pair, grant.fields, now=int(clock()), ttl=ttl)
    return {**grant.fields, "token": token}


def basic(private_key: str, password: str = "do_not_set") -> dict[str, str]:
    raw = base64.b64encode(f"{private_key}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def owner_upload(
    http: httpx.AsyncClient,
    private_key: str,
    name: str,
    data: bytes,
    *,
    endpoint: str = V1,
    **fields: str,
) -> httpx.Response:
    """A server-side upload (Basic auth with the private key), stored under its own name."""
    return await http.post(
        endpoint,
        data={"fileName": name, "useUniqueFileName": "false", **fields},
        files={"file": (name, data, "application/octet-stream")},
        headers=basic(private_key),
    )


async def owner_stored(
    http: httpx.AsyncClient, private_key: str, name: str, data: bytes, **fields: str
) -> dict[str, Any]:
    """``owner_upload`` through v1, which must succeed; ImageKit's answer."""
    response = await owner_upload(http, private_key, name, data, **fields)
    assert response.status_code == 200, response.text
    return dict(response.json())


def file_part(
    data: bytes | None = None, name: str = "cat.png", mime: str = "image/png"
) -> dict[str, tuple[str, bytes, str]]:
    return {"file": (name, png() if data is None else data, mime)}


def assert_imagekit_error(response: httpx.Response, status: int, message: str) -> None:
    """ImageKit's error body: exactly {message, help} with ImageKit's status."""
    assert response.status_code == status, response.text
    assert response.json() == {"message": message, "help": HELP}


BROWSER_TESTS = Path(__file__).parents[1] / "browser"


def typescript_rejects(answers: list[dict[str, Any]]) -> str:
    """What ``tsc --strict`` says of these upload answers typed as the JavaScript SDKs'
    (``@imagekit/javascript``'s ``UploadResponse``, ``@imagekit/nodejs``'s
    ``FileUploadResponse``); empty when it accepts every one."""
    tsc = BROWSER_TESTS / "node_modules" / ".bin" / "tsc"
    if not tsc.exists() or shutil.which("node") is None:
        unavailable("typescript is installed with the browser tests' npm packages")
    lines = [
        'import type { UploadResponse } from "@imagekit/javascript";',
        'import type { FileUploadResponse } from "@imagekit/nodejs/resources/files/files";',
    ]
    for index, body in enumerate(answers):
        lines.append(f"const answer{index} = {json.dumps(body)};")
        lines.append(f"const js{index}: Omit<UploadResponse, '$ResponseMetadata'> = answer{index};")
        lines.append(f"const node{index}: FileUploadResponse = answer{index};")
        lines.append(f"void js{index}; void node{index};")
    source = BROWSER_TESTS / f".contract-{secrets.token_hex(6)}.ts"
    source.write_text("\n".join(lines) + "\n")
    try:
        command = [str(tsc), "--strict", "--noEmit", "--skipLibCheck", "--target", "es2022"]
        command += ["--module", "nodenext", "--moduleResolution", "nodenext", str(source)]
        checked = subprocess.run(
            command, cwd=BROWSER_TESTS, capture_output=True, text=True, timeout=180, check=False
        )
    finally:
        source.unlink()
    return "" if checked.returncode == 0 else checked.stdout + checked.stderr
