"""One file's upload: get a credential, send the file, retry what is worth retrying.

Transient trouble (connection errors, timeouts, 5xx, 429 with its Retry-After) is retried with
exponential backoff and jitter, each attempt with a fresh credential (credentials are single
use). A 4xx refusal is final. Server-side uploads and v1 uploads ask for ``useUniqueFileName=
false`` and ``overwriteFile=true``, so a retry after a lost answer replaces the file instead of
storing a second copy.
"""

import asyncio
import base64
import random
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import httpx

from app.bulk.plan import LocalFile
from app.core.imagekit.filetypes import ALLOWED, extension_of

MAX_BACKOFF: Final = 30.0
MAX_RETRY_AFTER: Final = 120.0


class Refusal(Exception):
    """The server said no (a 4xx): retrying would not help."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class Fatal(Exception):
    """An answer every other file would get too (the address, the key or the caller is
    wrong): the run stops, with one sentence that names the host and the fix."""


#: The statuses that stop a run, and what to check.
_FATAL_HINTS: Final = {
    401: "the credentials are missing or not accepted: check IMAGEKIT_PRIVATE_KEY, or the "
    "caller token (--caller-token-file) with --auth-url",
    403: "the key or the caller is not accepted there: check that the private key belongs "
    "to this account, or what the caller's profiles allow",
    404: "that address serves no upload API (or credential service): check --to and --auth-url",
}


def _fatal(response: httpx.Response) -> Fatal:
    url = response.request.url
    where = url.host + (f":{url.port}" if url.port else "")
    return Fatal(
        f"{where} answered {response.status_code} to {url.path} ({_message(response)}); "
        f"{_FATAL_HINTS[response.status_code]}"
    )


def unreachable(url: str, exc: httpx.TransportError) -> Fatal:
    """A connection that cannot be made at all (refused, no such host, not http)."""
    reason = str(exc).rstrip(".") or type(exc).__name__
    return Fatal(
        f"cannot reach {url}: {reason}; is the server running, and are --to and --auth-url right?"
    )


async def preflight(http: httpx.AsyncClient, credentials: "Credentials") -> None:
    """Before the first file: every address answers, and the key or the caller is accepted,
    or Fatal with one sentence (nothing is uploaded, no credential issued, no budget spent)."""
    for method, url, options, fatal in credentials.probes():
        try:
            response = await http.request(method, url, **options)
        except (httpx.ConnectError, httpx.UnsupportedProtocol, httpx.TimeoutException) as exc:
            raise unreachable(url, exc) from None
        if response.status_code in fatal:
            raise _fatal(response)


class Transient(Exception):
    """Worth another try, after ``retry_after`` seconds if the server said so."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Prepared:
    url: str
    fields: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)


#: A request, and the statuses of its answer that stop the run.
Probe = tuple[str, str, dict[str, Any], frozenset[int]]
_WRONG_ADDRESS: Final = frozenset({404})
#: A multipart form with a name and no file: refused, after the key is checked (ImageKit's
#: order), with "missing file" when the key is good.
_NO_FILE: Final = {"fileName": (None, "upload-auth-preflight.txt")}
_NOT_ACCEPTED: Final = frozenset({401, 403, 404})


class Credentials(Protocol):
    """Where a file's credential and form fields come from."""

    async def prepare(self, http: httpx.AsyncClient, file: LocalFile) -> Prepared: ...

    def probes(self) -> list[Probe]:
        """Requests whose answers show the addresses and the key or caller work: a 401, 403
        or 404 stops the run before it starts."""
        ...


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return min(float(value), MAX_RETRY_AFTER) if value.isdigit() else None


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("message") or body.get("detail") or body.get("title") or body)[:300]
    return str(body)[:300]


#: Refusals of the credential, not of the file: the next attempt's fresh credential fixes them
#: (the ledger forgot what it had used and asks for a new one, a token taken as used, a
#: credential that expired on its way, a grant the ledger lost). ImageKit's wording and ours.
_FRESH_CREDENTIAL_FIXES: Final = (
    "fetch a new credential",
    "has been used before",
    "invalid expire parameter",
    "token has expired",
    "issued no grant",
)


def check(response: httpx.Response) -> dict[str, Any]:
    """The JSON of a 2xx; Transient for 429/5xx and for a refusal of the credential itself
    (retried with a fresh one); Refusal for any other 4xx."""
    if response.is_success:
        body: dict[str, Any] = response.json()
        return body
    if response.status_code == 429 or response.status_code >= 500:
        raise Transient(f"{response.status_code}: {_message(response)}", _retry_after(response))
    message = _message(response)
    if response.status_code in (400, 401, 403) and any(
        phrase in message for phrase in _FRESH_CREDENTIAL_FIXES
    ):
        # after the usual jittered back-off, not at once: a lost ledger is a moment's state
        raise Transient(f"{response.status_code}: {message} (a fresh credential)")
    if response.status_code in _FATAL_HINTS:
        raise _fatal(response)
    if _problem_type(response) == _INVALID_FOLDER:  # the same for every file under --folder
        raise Fatal(f"{message}: pass --folder within it")
    raise Refusal(response.status_code, _message(response))


#: The credential service's refusal of a folder outside the caller's profile.
_INVALID_FOLDER: Final = "/problems/invalid-folder"


def _problem_type(response: httpx.Response) -> str | None:
    """The RFC 9457 ``type`` of a problem answer (the credential service's), if it is one."""
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    kind = body.get("type") if isinstance(body, dict) else None
    return kind if isinstance(kind, str) else None


_IDEMPOTENT: Final = {"useUniqueFileName": "false", "overwriteFile": "true"}


class ServerSide:
    """HTTP Basic with the private key (ImageKit's server-side upload)."""

    def __init__(self, upload_base: str, private_key: str) -> None:
        self.url = upload_base.rstrip("/") + "/api/v1/files/upload"
        token = base64.b64encode(f"{private_key}:".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}

    async def prepare(self, http: httpx.AsyncClient, file: LocalFile) -> Prepared:  # noqa: ARG002
        fields = {"fileName": file.name, "folder": file.folder, **_IDEMPOTENT}
        return Prepared(self.url, fields, self.headers)

    def probes(self) -> list[Probe]:
        # the key is checked before the form: 403 for a wrong key, 400 (no file) for a good one
        return [("POST", self.url, {"headers": self.headers, "files": _NO_FILE}, _NOT_ACCEPTED)]


class ClientV1:
    """A v1 credential from the credential service for every attempt."""

    def __init__(
        self, upload_base: str, auth_url: str, caller_token: str | None, profile: str | None
    ) -> None:
        self.url = upload_base.rstrip("/") + "/api/v1/files/upload"
        self.auth_url = auth_url.rstrip("/") + "/v1/auth"
        self.headers = {"Authorization": f"Bearer {caller_token}"} if caller_token else {}
        self.params = {"profile": profile} if profile else {}

    async def prepare(self, http: httpx.AsyncClient, file: LocalFile) -> Prepared:
        cred = check(await http.get(self.auth_url, headers=self.headers, params=self.params))
        fields = {
            "fileName": file.name,
            "folder": file.folder,
            **_IDEMPOTENT,
            "publicKey": cred["publicKey"],
            "signature": cred["signature"],
            "expire": str(cred["expire"]),
            "token": cred["token"],
        }
        return Prepared(self.url, fields)

    def probes(self) -> list[Probe]:
        return _client_probes(self.url, self.auth_url.removesuffix("/v1/auth"), self.headers)


def _client_probes(upload_url: str, auth_base: str, headers: dict[str, str]) -> list[Probe]:
    """The upload API answers (any answer but 404), and the caller is accepted: an empty
    ``POST /v2/token`` is 422 for a caller the service knows (nothing issued or charged), 401
    for one it does not."""
    return [
        ("POST", upload_url, {"files": _NO_FILE}, _WRONG_ADDRESS),
        ("POST", auth_base + "/v2/token", {"json": {}, "headers": headers}, _NOT_ACCEPTED),
    ]


class ClientV2:
    """A v2 JWT for this very file (name, size, type) for every attempt."""

    def __init__(
        self, upload_base: str, auth_url: str, caller_token: str | None, profile: str | None
    ) -> None:
        self.url = upload_base.rstrip("/") + "/api/v2/files/upload"
        self.auth_url = auth_url.rstrip("/") + "/v2/token"
        self.headers = {"Authorization": f"Bearer {caller_token}"} if caller_token else {}
        self.profile = profile

    async def prepare(self, http: httpx.AsyncClient, file: LocalFile) -> Prepared:
        extension = extension_of(file.name)
        file_type = ALLOWED.get(extension) if extension else None
        request: dict[str, Any] = {
            "fileName": file.name,
            "fileSize": file.size,
            "folder": file.folder,
            "mimeType": file_type.mime if file_type else "application/octet-stream",
        }
        if self.profile:
            request["profile"] = self.profile
        grant = check(await http.post(self.auth_url, json=request, headers=self.headers))
        return Prepared(self.url, {**grant["fields"], "token": grant["token"]})

    def probes(self) -> list[Probe]:
        return _client_probes(self.url, self.auth_url.removesuffix("/v2/token"), self.headers)


_CHUNK: Final = 1024 * 1024


class _Body:
    """A multipart/form-data body built in a few large writes: all the text fields in one
    piece, the file in 1 MiB chunks, the closing boundary. (httpx's own multipart encoder
    writes every boundary, header and value separately, which costs more CPU per small file
    than the upload itself.) Counts the file bytes as they go out."""

    def __init__(
        self, fields: dict[str, str], file: LocalFile, on_bytes: Callable[[int], None]
    ) -> None:
        self.boundary = secrets.token_hex(16)
        head = bytearray()
        for name, value in fields.items():
            head += (
                (
                    f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                ).encode()
                + value.encode()
                + b"\r\n"
            )
        quoted = file.name.replace("\\", "\\\\").replace('"', '\\"')
        head += (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{quoted}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        self.head = bytes(head)
        self.tail = f"\r\n--{self.boundary}--\r\n".encode()
        self.file = file
        self.on_bytes = on_bytes
        self.sent = 0

    @property
    def headers(self) -> dict[str, str]:
        return {
            "Content-Type": f"multipart/form-data; boundary={self.boundary}",
            "Content-Length": str(len(self.head) + self.file.size + len(self.tail)),
        }

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with self.file.path.open("rb") as stream:
            first = stream.read(_CHUNK)
            self._count(first)
            yield self.head + first
            while chunk := stream.read(_CHUNK):
                self._count(chunk)
                yield chunk
        yield self.tail

    def _count(self, chunk: bytes) -> None:
        self.sent += len(chunk)
        self.on_bytes(len(chunk))


def backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return retry_after
    delay: float = min(MAX_BACKOFF, 0.25 * 2 ** (attempt - 1))
    return delay * random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not cryptography


async def upload(
    http: httpx.AsyncClient,
    credentials: Credentials,
    file: LocalFile,
    *,
    retries: int,
    on_bytes: Callable[[int], None],
    on_retry: Callable[[str], None],
) -> dict[str, Any]:
    """Upload one file, retrying transient failures; the upload API's JSON on success."""
    attempt = 0
    while True:
        attempt += 1
        sent = 0
        try:
            prepared = await credentials.prepare(http, file)
            body = _Body(prepared.fields, file, on_bytes)
            try:
                response = await http.post(
                    prepared.url, content=body, headers={**prepared.headers, **body.headers}
                )
            finally:
                sent = body.sent
            return check(response)
        except (httpx.ConnectError, httpx.UnsupportedProtocol) as exc:
            on_bytes(-sent)
            raise unreachable(str(exc.request.url), exc) from None
        except (Transient, httpx.TransportError) as exc:
            on_bytes(-sent)
            if attempt > retries:
                raise
            wait = backoff(attempt, getattr(exc, "retry_after", None))
            reason = str(exc) if isinstance(exc, Transient) else f"{type(exc).__name__}: {exc}"
            on_retry(f"in {wait:.0f} s ({reason})")
            await asyncio.sleep(wait)
        except BaseException:
            on_bytes(-sent)
            raise
