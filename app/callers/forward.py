"""Forward auth for cookie-session web apps: ask the app who this is.

The request's ``Cookie`` and ``Authorization`` headers (only those) go to the app's check URL
with a short timeout. A 2xx names the caller (a response header or a JSON field); 401/403 means
not signed in; anything else, a timeout or a connection error is the app's trouble and answered
as 502/503: never an open door.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import httpx

from app import errors
from app.callers.api_keys import carries_api_key
from app.callers.base import Caller, RequestInfo

MAX_CALLER_ID: Final = 256


@dataclass(frozen=True, slots=True)
class ForwardSettings:
    url: str
    timeout: float
    caller_header: str | None
    caller_field: str | None
    profiles: frozenset[str] | None


class ForwardAuthenticator:
    name = "forward"

    def __init__(
        self, http: httpx.AsyncClient, settings: ForwardSettings, on_outcome: Callable[[str], None]
    ) -> None:
        self.http = http
        self.settings = settings
        self.on_outcome = on_outcome

    async def authenticate(self, request: RequestInfo) -> Caller | None:
        authorization = request.headers.get("authorization")
        if authorization is not None and carries_api_key(authorization):
            raise errors.Unauthenticated()  # an API key (any scheme) is never passed on
        forwarded = {
            name: request.headers[name]
            for name in ("cookie", "authorization")
            if name in request.headers
        }
        if not forwarded:
            return None
        if request.request_id:
            forwarded["x-request-id"] = request.request_id
        try:
            response = await self.http.get(
                self.settings.url, headers=forwarded, timeout=self.settings.timeout
            )
        except httpx.TimeoutException:
            self.on_outcome("timeout")
            raise errors.AuthUpstreamUnavailable("the session check timed out") from None
        except httpx.HTTPError:
            self.on_outcome("error")
            raise errors.AuthUpstreamUnavailable("the session check cannot be reached") from None
        if response.status_code in (401, 403):
            self.on_outcome("denied")
            raise errors.Unauthenticated()
        if not response.is_success:
            self.on_outcome("error")
            raise errors.AuthUpstreamError()
        caller = self._caller_id(response)
        if not isinstance(caller, str) or not caller or len(caller) > MAX_CALLER_ID:
            self.on_outcome("error")
            raise errors.AuthUpstreamError("the session check named no caller")
        self.on_outcome("allowed")
        return Caller(caller, self.name, self.settings.profiles)

    def _caller_id(self, response: httpx.Response) -> Any:
        if self.settings.caller_header:
            return response.headers.get(self.settings.caller_header)
        try:
            body = response.json()
        except ValueError:
            return None
        return body.get(self.settings.caller_field) if isinstance(body, dict) else None
