"""End-user JWTs from the app's identity provider (the mobile-app case).

Decisions, all deliberate:

- keys come from the provider's JWKS over HTTP (httpx), cached for ``cache_seconds``; a token
  naming an unknown ``kid`` triggers one refetch, at most every ``refetch_seconds`` (a stream of
  made-up kids cannot turn into a stream of fetches);
- algorithms from an allowlist of asymmetric ones only (RS256, ES256, EdDSA): ``none`` and every
  HS* are refused before any key is touched, so a public key can never be used as an HMAC secret;
  the JWK's own algorithm must be the header's;
- ``iss`` and ``aud`` must equal the configured values; ``exp`` is required; ``exp``, ``nbf`` and
  ``iat`` are checked against the service's clock with the one leeway;
- the caller id is a configured claim (``sub`` by default), a non-empty string.
"""

import asyncio
import time
from collections.abc import Callable
from typing import Any, Final

import httpx
import jwt

from app.core import errors
from app.core.clock import LEEWAY_SECONDS, Clock
from app.core.logs import get_logger
from app.core.settings import IdpConfig
from app.credential_service.callers.base import (
    MAX_CALLER_ID,
    Caller,
    RequestInfo,
    bearer_token,
    profile_set,
)

log = get_logger("callers")
ALLOWED_ALGORITHMS: Final = frozenset({"RS256", "ES256", "EdDSA"})


def _fetch_error(exc: Exception) -> str:
    """What went wrong with a key-set fetch, for the operator (never a body)."""
    if isinstance(exc, httpx.HTTPStatusError):
        return f"status {exc.response.status_code}"
    if isinstance(exc, ValueError | jwt.PyJWTError):
        return "not a JSON Web Key Set (is jwks_url the provider's jwks_uri?)"
    return type(exc).__name__


class JwksCache:
    """The provider's signing keys by ``kid``, fetched with httpx and kept for a while.

    One fetch at a time (requests that waited for it use its result), and after a failed one
    none until a back-off has passed (1 s, doubling to ``refetch_seconds``): while the provider
    is down, requests are answered from the keys already held, or 503 at once, never with a
    fetch each.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: IdpConfig,
        clock: Clock,
        on_fetch: Callable[[str], None],
    ) -> None:
        self.http = http
        self.settings = settings
        self.clock = clock
        self.on_fetch = on_fetch
        self.keys: dict[str, jwt.PyJWK] | None = None
        self.fetched_at = float("-inf")
        #: Fetches finished so far: a request that waited for the lock while one finished
        #: uses its result (a time could not tell: the clock may not move during a fetch).
        self.generation = 0
        self.lock = asyncio.Lock()
        self.failures = 0
        self.retry_at = float("-inf")

    def _unavailable(self) -> errors.AuthUpstreamUnavailable:
        return errors.AuthUpstreamUnavailable("the identity provider's keys cannot be fetched")

    async def _refresh(self, seen: int) -> None:
        async with self.lock:
            if self.generation != seen:  # a fetch finished while we waited: its result
                if self.keys is None:
                    raise self._unavailable()
                return
            try:
                await self._fetch()
            finally:
                self.generation += 1

    async def _fetch(self) -> None:
        """One fetch of the key set (or none while backing off after a failure)."""
        now = self.clock()
        if now < self.retry_at:  # backing off after a failure
            if self.keys is None:
                raise self._unavailable()
            return
        self.fetched_at = now
        try:
            response = await self.http.get(self.settings.jwks_url, timeout=self.settings.timeout)
            response.raise_for_status()
            # a key without a kid is kept under "": it can serve a token without one, when it
            # is the set's only key
            keys = {key.key_id or "": key for key in jwt.PyJWKSet.from_dict(response.json()).keys}
        except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
            self.on_fetch("error")
            log.warning(
                "identity provider's key set not fetched",
                extra={"url": self.settings.jwks_url, "error": _fetch_error(exc)},
            )
            self.failures += 1
            backoff = min(float(self.settings.refetch_seconds), 2.0 ** (self.failures - 1))
            self.retry_at = now + backoff
            if self.keys is None:
                raise self._unavailable() from None
            return  # keep serving the keys we have
        self.on_fetch("ok")
        log.info("identity provider's key set fetched", extra={"kids": sorted(keys)})
        self.keys = keys
        self.failures, self.retry_at = 0, float("-inf")

    async def get(self, kid: str | None) -> jwt.PyJWK | None:
        """The key named ``kid``; for a token without one (``None``), the key set's only key
        (RFC 7515 lets a sender leave ``kid`` out when the recipient can tell which key),
        never a guess among several."""
        now = self.clock()
        if self.keys is None or now - self.fetched_at > self.settings.cache_seconds:
            await self._refresh(self.generation)
        key = self._find(kid)
        if key is None and now - self.fetched_at >= self.settings.refetch_seconds:
            await self._refresh(self.generation)  # maybe rotated: look once more
            key = self._find(kid)
        return key

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        keys = self.keys or {}
        if kid is None:
            return next(iter(keys.values())) if len(keys) == 1 else None
        return keys.get(kid)


#: The claim checks PyJWT reports, as the refusal reasons an operator reads.
_DECODE_REASONS: Final[tuple[tuple[type[jwt.PyJWTError], str], ...]] = (
    (jwt.InvalidAudienceError, "audience"),
    (jwt.InvalidIssuerError, "issuer"),
    (jwt.MissingRequiredClaimError, "missing-claim"),
    (jwt.InvalidSignatureError, "signature"),
)
#: Each refusal reason is logged at most this often (an attack would otherwise flood the log).
_LOG_EVERY_SECONDS: Final = 10.0


class IdpAuthenticator:
    name = "idp"

    def __init__(
        self,
        settings: IdpConfig,
        jwks: JwksCache,
        clock: Clock,
        on_refused: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.settings = settings
        self.profiles = profile_set(settings.profiles)
        self.jwks = jwks
        self.clock = clock
        self.on_refused = on_refused
        self._logged: dict[str, float] = {}

    def _refuse(self, reason: str) -> errors.Unauthenticated:
        """The 401 for a token that failed ``reason``: counted, and logged (at info, at most
        once per reason every ten seconds, never the token) so an operator sees which check
        fails: a wrong ``audience`` or ``issuer`` setting, an ``unknown-kid`` (a wrong
        ``jwks_url``), tokens ``expired`` by a skewed clock."""
        self.on_refused(reason)
        now = time.monotonic()
        if now - self._logged.get(reason, float("-inf")) >= _LOG_EVERY_SECONDS:
            self._logged[reason] = now
            log.info("identity-provider token refused", extra={"reason": reason})
        return errors.Unauthenticated()

    async def authenticate(self, request: RequestInfo) -> Caller | None:
        token = bearer_token(request.headers)
        if token is None or token.count(".") != 2:
            return None  # not a JWT: another method may know it
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise self._refuse("malformed") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self.settings.algorithms:
            raise self._refuse("algorithm")
        if kid is not None and not isinstance(kid, str):
            raise self._refuse("no-kid")
        key = await self.jwks.get(kid)
        if key is None:
            raise self._refuse("no-kid" if kid is None else "unknown-kid")
        if key.algorithm_name != alg:
            raise self._refuse("algorithm")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                options={
                    "require": ["exp", "iss", "aud"],
                    "verify_signature": True,
                    "verify_aud": True,
                    "verify_iss": True,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:
            reason = next((name for kind, name in _DECODE_REASONS if isinstance(exc, kind)), None)
            raise self._refuse(reason or "invalid") from None
        self._check_times(claims)
        caller = claims.get(self.settings.caller_claim)
        if not isinstance(caller, str) or not caller or len(caller) > MAX_CALLER_ID:
            raise self._refuse("caller-claim")
        return Caller(caller, self.name, self.settings.namespace, self.profiles)

    def _check_times(self, claims: dict[str, Any]) -> None:
        now = self.clock()
        exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
        if not isinstance(exp, int | float) or exp + LEEWAY_SECONDS <= now:
            raise self._refuse("expired")
        if nbf is not None and (not isinstance(nbf, int | float) or nbf > now + LEEWAY_SECONDS):
            raise self._refuse("not-yet-valid")
        if iat is not None and (not isinstance(iat, int | float) or iat > now + LEEWAY_SECONDS):
            raise self._refuse("issued-in-the-future")
