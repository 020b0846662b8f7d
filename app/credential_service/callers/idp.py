"""End-user JWTs from the app's identity providers (the mobile-app case).

Decisions, all deliberate:

- one or several providers, each trusted for its own issuer: a token's (unverified) ``iss``
  picks the provider, whose keys then verify it; a token from no configured issuer is refused
  before any key is fetched;
- keys come from the provider's JWKS over HTTP (httpx): at ``jwks_url``, or where the issuer's
  discovery document says (OpenID Connect Discovery, else OAuth server metadata, RFC 8414; the
  document must name the configured issuer). Kept ``cache_seconds``; one fetch at a time,
  shared by every request that waits for it (cold or warm). A token naming an unknown ``kid``,
  or whose signature fails under a known one (a provider that reused a kid for a new key),
  prompts one refetch, at most every ``refetch_seconds``;
- algorithms from an allowlist of asymmetric ones only (RS*, PS*, ES*, EdDSA and its
  fully-specified name Ed25519): ``none`` and every HS* are refused before any key is touched,
  so a public key can never be used as an HMAC secret. A JWK that names its algorithm must name
  the token's; one that does not serves the algorithms of its key type (RFC 7517 §4.4), never
  another type's; a JWK for encryption (``use``/``key_ops``) never verifies;
- ``iss`` must equal the provider's issuer; the audience (``aud``, or ``azp``/``client_id``
  where the provider puts it) one of its audiences; required scopes all granted; ``exp`` is
  required; ``exp``, ``nbf`` and ``iat`` are checked against the service's clock with the one
  leeway;
- the caller id is a configured claim (``sub`` by default), a string of 1 to 256 characters;
- every refusal is counted by reason and logged at info (at most once per reason and provider
  every ten seconds, never the token); every key-set fetch is logged and counted by outcome.
"""

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import jwt
from jwt.algorithms import OKPAlgorithm

from app.core import errors
from app.core.clock import LEEWAY_SECONDS, Clock
from app.core.logs import get_logger
from app.core.settings import IdpConfig, check_secure_endpoint
from app.credential_service.callers.base import (
    MAX_CALLER_ID,
    Caller,
    RequestInfo,
    bearer_token,
    profile_set,
)

log = get_logger("callers")

#: RFC 9864's fully-specified name for EdDSA over Ed25519, which PyJWT does not register (yet):
#: the same verifier under that name. Every decode names the algorithms its key may serve.
if "Ed25519" not in jwt.algorithms.get_default_algorithms():
    with contextlib.suppress(ValueError):  # registered already (the module imported twice)
        jwt.register_algorithm("Ed25519", OKPAlgorithm())

#: The curves each elliptic-curve algorithm is defined over.
_CURVES: Final = {
    "ES256": ("P-256",),
    "ES384": ("P-384",),
    "ES512": ("P-521",),
    "EdDSA": ("Ed25519", "Ed448"),
    "Ed25519": ("Ed25519",),
}


def key_serves(jwk: dict[str, Any], alg: str) -> bool:
    """Whether a JWK may verify a token signed with ``alg``: for signatures (``use``,
    ``key_ops``), of ``alg``'s key type and curve, and, if it names an algorithm, ``alg``
    (EdDSA and Ed25519 are one algorithm under two names on an Ed25519 key)."""
    if jwk.get("use", "sig") != "sig" or "verify" not in jwk.get("key_ops", ["verify"]):
        return False
    named = jwk.get("alg")
    if named is not None and named != alg and {named, alg} != {"EdDSA", "Ed25519"}:
        return False
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if alg[:2] in ("RS", "PS"):
        return kty == "RSA"
    if alg.startswith("ES"):
        return kty == "EC" and crv in _CURVES[alg]
    return kty == "OKP" and crv in _CURVES[alg]


class DiscoveryError(Exception):
    """The issuer's discovery document is missing or wrong (a configuration mistake)."""


def _fetch_error(exc: Exception) -> str:
    """What went wrong with a fetch, for the operator (never a body)."""
    if isinstance(exc, DiscoveryError):
        return str(exc)
    if isinstance(exc, httpx.HTTPStatusError):
        return f"status {exc.response.status_code}"
    if isinstance(exc, ValueError | jwt.PyJWTError | KeyError | TypeError):
        return "not a JSON Web Key Set (is jwks_url the provider's jwks_uri?)"
    return type(exc).__name__


def _configuration_fault(exc: Exception) -> bool:
    """Whether a fetch failure is the configuration's fault (nothing to wait out): no
    discovery document, a wrong one, a 4xx, an answer that is not a key set."""
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        return 400 <= status < 500 and status not in (408, 429)
    return not isinstance(exc, httpx.HTTPError)


class KeySet:
    """One provider's signing keys, as JWKs by ``kid``, fetched with httpx and kept a while.

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
        #: Where the key set is: configured, or found by discovery on the first fetch.
        self.jwks_url: str | None = settings.jwks_url
        self.keys: dict[str, dict[str, Any]] | None = None
        self._verifiers: dict[tuple[str, str], Any] = {}
        self.fetched_at = float("-inf")
        #: Fetches finished so far: a request that waited for the lock while one finished
        #: uses its result (a time could not tell: the clock may not move during a fetch).
        self.generation = 0
        self.lock = asyncio.Lock()
        self.failures = 0
        self.retry_at = float("-inf")
        #: Why the last fetch failed (None: it did not), and whether the configuration is at
        #: fault (rather than the provider or the network), for the start-up check.
        self.problem: str | None = None
        self.misconfigured = False

    def _unavailable(self) -> errors.AuthUpstreamUnavailable:
        return errors.AuthUpstreamUnavailable("the identity provider's keys cannot be fetched")

    async def refresh(self, seen: int) -> None:
        """Fetch the key set, unless a fetch finished since generation ``seen``."""
        async with self.lock:
            if self.generation != seen:  # a fetch finished while we waited: its result
                if self.keys is None:
                    raise self._unavailable()
                return
            try:
                await self._fetch()
            finally:
                self.generation += 1

    async def _discover(self) -> str:
        """The ``jwks_uri`` of the issuer's discovery document (OpenID Connect Discovery 1.0,
        else RFC 8414's OAuth server metadata)."""
        issuer = self.settings.issuer
        parts = urlsplit(issuer)
        places = (
            issuer.rstrip("/") + "/.well-known/openid-configuration",
            f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server"
            + parts.path.rstrip("/"),
        )
        for place in places:
            response = await self.http.get(place, timeout=self.settings.timeout)
            if response.status_code == 404:
                continue
            response.raise_for_status()
            try:
                document = response.json()
            except ValueError:
                raise DiscoveryError(f"{place} is not a discovery document") from None
            if not isinstance(document, dict):
                raise DiscoveryError(f"{place} is not a discovery document")
            if document.get("issuer") != issuer:
                raise DiscoveryError(
                    f"{place} names the issuer {document.get('issuer')!r}, not {issuer!r} "
                    "(the issuer setting must match the tokens' iss exactly)"
                )
            jwks_uri = document.get("jwks_uri")
            try:
                return _secure(jwks_uri)
            except ValueError as exc:
                raise DiscoveryError(f"{place} gives no usable jwks_uri ({exc})") from None
        raise DiscoveryError(f"no discovery document for {issuer} (404): give jwks_url")

    async def _fetch(self) -> None:
        """One fetch of the key set (or none while backing off after a failure)."""
        now = self.clock()
        if now < self.retry_at:  # backing off after a failure
            if self.keys is None:
                raise self._unavailable()
            return
        self.fetched_at = now
        url = self.jwks_url or self.settings.issuer
        try:
            if self.jwks_url is None:
                self.jwks_url = url = await self._discover()
            response = await self.http.get(url, timeout=self.settings.timeout)
            response.raise_for_status()
            keys = _key_set(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWTError, DiscoveryError, KeyError) as exc:
            self.problem, self.misconfigured = _fetch_error(exc), _configuration_fault(exc)
            self.on_fetch("error")
            log.warning(
                "identity provider's key set not fetched",
                extra={"issuer": self.settings.issuer, "url": url, "error": self.problem},
            )
            self.failures += 1
            backoff = min(float(self.settings.refetch_seconds), 2.0 ** (self.failures - 1))
            self.retry_at = now + backoff
            if self.keys is None:
                raise self._unavailable() from None
            return  # keep serving the keys we have
        self.on_fetch("ok")
        log.info(
            "identity provider's key set fetched",
            extra={"issuer": self.settings.issuer, "kids": sorted(keys)},
        )
        self.keys, self._verifiers = keys, {}
        self.problem, self.misconfigured = None, False
        self.failures, self.retry_at = 0, float("-inf")

    async def get(self, kid: str | None) -> dict[str, Any] | None:
        """The JWK named ``kid``; for a token without one (``None``), the key set's only key
        (RFC 7515 lets a sender leave ``kid`` out when the recipient can tell which key),
        never a guess among several. An unknown kid prompts one refetch (bounded)."""
        now = self.clock()
        if self.keys is None or now - self.fetched_at > self.settings.cache_seconds:
            await self.refresh(self.generation)
        key = self._find(kid)
        if key is None and await self.refetch():
            key = self._find(kid)
        return key

    async def refetch(self) -> bool:
        """Fetch again if the last fetch is older than ``refetch_seconds`` (a token suggests
        the provider rotated its keys); whether it did."""
        if self.clock() - self.fetched_at < self.settings.refetch_seconds:
            return False
        await self.refresh(self.generation)
        return True

    def verifier(self, jwk: dict[str, Any], alg: str) -> Any:
        """The public key of ``jwk`` for ``alg`` (made once per key set)."""
        slot = (str(jwk.get("kid", "")), alg)
        if slot not in self._verifiers:
            algorithm = "EdDSA" if alg == "Ed25519" else alg
            self._verifiers[slot] = jwt.PyJWK({**jwk, "alg": algorithm}).key
        return self._verifiers[slot]

    def _find(self, kid: str | None) -> dict[str, Any] | None:
        keys = self.keys or {}
        if kid is None:
            return next(iter(keys.values())) if len(keys) == 1 else None
        return keys.get(kid)


def _key_set(document: object) -> dict[str, dict[str, Any]]:
    """A JWK Set's keys by kid (RFC 7517 §5: an object whose ``keys`` are JWKs, each with a
    ``kty``); a key without a kid is kept under "": it can serve a token without one, when it
    is the set's only key. Keys are read into verifiers when a token first needs them."""
    listed = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(listed, list) or not all(
        isinstance(jwk, dict) and isinstance(jwk.get("kty"), str) for jwk in listed
    ):
        raise ValueError("not a JSON Web Key Set")
    return {str(jwk.get("kid", "")): dict(jwk) for jwk in listed}


def _secure(url: object) -> str:
    if not isinstance(url, str):
        raise ValueError("missing")
    return check_secure_endpoint(url)


@dataclass(frozen=True)
class Provider:
    """One trusted issuer: its settings, its keys, the profiles its callers may use."""

    settings: IdpConfig
    keys: KeySet
    profiles: frozenset[str] | None


#: The claim checks PyJWT reports, as the refusal reasons an operator reads.
_DECODE_REASONS: Final[tuple[tuple[type[jwt.PyJWTError], str], ...]] = (
    (jwt.InvalidAudienceError, "audience"),
    (jwt.InvalidIssuerError, "issuer"),
    (jwt.MissingRequiredClaimError, "missing-claim"),
    (jwt.InvalidSignatureError, "signature"),
)
#: Each refusal reason is logged at most this often (an attack would otherwise flood the log).
_LOG_EVERY_SECONDS: Final = 10.0


def granted_scopes(claims: dict[str, Any]) -> set[str]:
    """The scopes a token grants: ``scope`` (RFC 8693/9068, space-separated) or ``scp`` (a
    list, or a string, as Entra ID and Okta put it)."""
    found: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list):
            found.update(item for item in value if isinstance(item, str))
    return found


class IdpAuthenticator:
    name = "idp"

    def __init__(
        self,
        providers: list[Provider],
        clock: Clock,
        on_refused: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.providers = {provider.settings.issuer: provider for provider in providers}
        self.clock = clock
        self.on_refused = on_refused
        self._logged: dict[tuple[str, str], float] = {}

    def _refuse(self, reason: str, issuer: str | None = None) -> errors.Unauthenticated:
        """The 401 for a token that failed ``reason``: counted, and logged (at info, at most
        once per reason and issuer every ten seconds, never the token) so an operator sees
        which check fails: a wrong ``audience`` or ``issuer`` setting, an ``unknown-kid`` (a
        wrong ``jwks_url``), tokens ``expired`` by a skewed clock, a missing ``scope``."""
        self.on_refused(reason)
        now, slot = time.monotonic(), (reason, issuer or "")
        if now - self._logged.get(slot, float("-inf")) >= _LOG_EVERY_SECONDS:
            self._logged[slot] = now
            log.info("identity-provider token refused", extra={"reason": reason, "iss": issuer})
        return errors.Unauthenticated()

    async def authenticate(self, request: RequestInfo) -> Caller | None:
        token = bearer_token(request.headers)
        if token is None or token.count(".") != 2:
            return None  # not a JWT: another method may know it
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise self._refuse("malformed") from None
        issuer = unverified.get("iss")
        provider = self.providers.get(issuer) if isinstance(issuer, str) else None
        if provider is None:
            shown = issuer[:200] if isinstance(issuer, str) else None
            raise self._refuse("issuer", shown)
        claims = await self._verified(provider, token, header)
        self._check_claims(provider, claims)
        settings = provider.settings
        caller = claims.get(settings.caller_claim)
        if not isinstance(caller, str) or not caller or len(caller) > MAX_CALLER_ID:
            raise self._refuse("caller-claim", settings.issuer)
        return Caller(caller, self.name, settings.namespace, provider.profiles)

    async def _verified(
        self, provider: Provider, token: str, header: dict[str, Any]
    ) -> dict[str, Any]:
        """The token's claims, its signature verified with the provider's key (refetched once
        if it fails under a known kid: the provider may have reused the kid for a new key),
        ``iss`` and ``aud`` checked."""
        settings, keys = provider.settings, provider.keys
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in settings.algorithms:
            raise self._refuse("algorithm", settings.issuer)
        if kid is not None and not isinstance(kid, str):
            raise self._refuse("no-kid", settings.issuer)
        by_aud = settings.audience_claim == "aud"
        for attempt in range(2):
            jwk = await keys.get(kid)
            if jwk is None:
                raise self._refuse("no-kid" if kid is None else "unknown-kid", settings.issuer)
            # the algorithms this key serves, from the configuration and the key, never from
            # the token (RFC 8725 §2.1); the token's must be one of them
            serves = [name for name in settings.algorithms if key_serves(jwk, name)]
            if alg not in serves:
                raise self._refuse("algorithm", settings.issuer)
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    keys.verifier(jwk, alg),
                    algorithms=serves,
                    audience=list(settings.audience) if by_aud else None,
                    issuer=settings.issuer,
                    options={
                        "require": ["exp", "iss", "aud"] if by_aud else ["exp", "iss"],
                        "verify_signature": True,
                        "verify_aud": by_aud,
                        "verify_iss": True,
                        "verify_exp": False,
                        "verify_nbf": False,
                        "verify_iat": False,
                    },
                )
            except jwt.InvalidSignatureError:
                if attempt == 0 and await keys.refetch():
                    continue
                raise self._refuse("signature", settings.issuer) from None
            except (jwt.PyJWTError, ValueError) as exc:  # ValueError: a key PyJWT cannot read
                found = (name for kind, name in _DECODE_REASONS if isinstance(exc, kind))
                raise self._refuse(next(found, "invalid"), settings.issuer) from None
            return claims
        raise self._refuse("signature", settings.issuer)  # pragma: no cover - the loop returns

    def _check_claims(self, provider: Provider, claims: dict[str, Any]) -> None:
        settings = provider.settings
        by_other = settings.audience_claim != "aud"  # aud was checked with the signature
        if by_other and claims.get(settings.audience_claim) not in settings.audience:
            raise self._refuse("audience", settings.issuer)
        if settings.scopes and not set(settings.scopes) <= granted_scopes(claims):
            raise self._refuse("scope", settings.issuer)
        now = self.clock()
        exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
        if not isinstance(exp, int | float) or exp + LEEWAY_SECONDS <= now:
            raise self._refuse("expired", settings.issuer)
        if nbf is not None and (not isinstance(nbf, int | float) or nbf > now + LEEWAY_SECONDS):
            raise self._refuse("not-yet-valid", settings.issuer)
        if iat is not None and (not isinstance(iat, int | float) or iat > now + LEEWAY_SECONDS):
            raise self._refuse("issued-in-the-future", settings.issuer)


def providers(
    http: httpx.AsyncClient,
    configs: list[IdpConfig],
    clock: Clock,
    on_fetch: Callable[[str], None],
) -> list[Provider]:
    """Each configured provider with its key set."""
    return [
        Provider(config, KeySet(http, config, clock, on_fetch), profile_set(config.profiles))
        for config in configs
    ]


async def check_providers(found: list[Provider]) -> list[KeySet]:
    """Fetch every provider's keys once (discovery included): the key sets that failed (each
    says why, and whether the configuration is at fault). At start-up: a configuration mistake
    is found before the first user meets it."""
    failed = []
    for provider in found:
        with contextlib.suppress(errors.AuthUpstreamUnavailable):
            await provider.keys.refresh(provider.keys.generation)
        if provider.keys.problem is not None:
            failed.append(provider.keys)
    return failed
