"""Forward auth for cookie-session web apps: ask the app who this is.

The request's ``Cookie`` header (and ``Authorization`` only where the operator opts in with
``forward_authorization``; never one that holds an API key, in any spelling) goes to the app's
check URL with a short timeout. A 2xx names the caller (a response header or a JSON field);
401/403 means not signed in; anything else, a timeout or a connection error is the app's trouble
and answered as 502/503: never an open door.
"""

from collections.abc import Callable
from typing import Any

import httpx

from app.core import errors
from app.core.settings import ForwardAuthConfig
from app.credential_service.callers.api_keys import carries_api_key
from app.credential_service.callers.base import MAX_CALLER_ID, Caller, RequestInfo, profile_set


class ForwardAuthenticator:
    name = "forward"

    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: ForwardAuthConfig,
        on_outcome: Callable[[str], None],
    ) -> None:
        self.http = http
        self.settings = settings
        self.profiles = profile_set(settings.profiles)
        self.on_outcome = on_outcome
        #: The request headers the session check is asked with.
        self.sent = ("cookie", "authorization") if settings.forward_authorization else ("cookie",)

    async def authenticate(self, request: RequestInfo) -> Caller | None:
        authorization = request.headers.get("authorization")
        if authorization is not None and carries_api_key(authorization):
            raise errors.Unauthenticated()  # an API key (any spelling) is never passed on
        forwarded = {name: request.headers[name] for name in self.sent if name in request.headers}
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
        return Caller(caller, self.name, self.settings.namespace, self.profiles)

    def _caller_id(self, response: httpx.Response) -> Any:
        if self.settings.header:
            return response.headers.get(self.settings.header)
        try:
            body = response.json()
        except ValueError:
            return None
        return body.get(self.settings.caller_field) if isinstance(body, dict) else None
