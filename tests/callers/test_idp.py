"""End-user JWTs verified against an identity provider's JWKS, served by a real HTTP server on
loopback with keys generated at test time and rotated mid-test."""

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError

from app.core.settings import CallersConfig, IdpConfig, ProfileConfig, Settings
from tests.support.apps import START, FakeClock, in_process
from tests.support.idp import AUDIENCE, ISSUER
from tests.support.upstreams import SigningKey, Upstream, make_key, upstream_server

pytestmark = pytest.mark.anyio

FILE = {"fileName": "me.png", "fileSize": 100, "mimeType": "image/png"}


def claims(**changes: Any) -> dict[str, Any]:
    base = {"sub": "user-42", "iss": ISSUER, "aud": AUDIENCE, "iat": START, "exp": START + 300}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def provider_settings(
    make_settings: Callable[..., Settings], upstream: Upstream, **idp: Any
) -> Settings:
    """Production settings trusting the test provider (its JWKS on ``upstream``), changed by
    ``idp``; callers upload to their own folder, v1 allowed."""
    values: dict[str, Any] = {
        "jwks_url": upstream.url + "/jwks.json",
        "issuer": ISSUER,
        "audience": AUDIENCE,
    }
    return make_settings(
        dev_mode=False,
        callers=CallersConfig(idp=IdpConfig(**(values | idp))),
        profiles={"avatar": ProfileConfig(folder="/users/{caller}", allow_v1=True)},
        default_profile="avatar",
    )


@pytest.fixture
def idp_settings(make_settings: Callable[..., Settings], upstream: Upstream) -> Settings:
    return provider_settings(
        make_settings, upstream, cache_seconds=600, refetch_seconds=30, timeout=1
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
async def test_provider_tokens_are_callers(
    idp_settings: Settings,
    clock: FakeClock,
    upstream: Upstream,
    provider_keys: dict[str, SigningKey],
    alg: str,
) -> None:
    """A token from the provider (any allowed algorithm) is the caller named by sub."""
    upstream.publish(*provider_keys.values())
    async with in_process(idp_settings, clock) as http:
        response = await http.post(
            "/v2/token", json=FILE, headers=bearer(provider_keys[alg].sign(claims()))
        )
    assert response.status_code == 200, response.text
    assert response.json()["fields"]["folder"] == "/users/idp-user-42"


def b64(data: bytes | dict[str, Any]) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hs256_with_public_key(key: SigningKey) -> str:
    """The classic confusion attack: HMAC the token with the RSA *public* key's PEM."""
    pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT', 'kid': key.kid})}.{b64(claims())}"
    return f"{signing_input}.{b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())}"


async def test_every_bad_token_is_refused(
    idp_settings: Settings,
    clock: FakeClock,
    upstream: Upstream,
    provider_keys: dict[str, SigningKey],
) -> None:
    """Wrong issuer or audience, expired, not yet valid, alg none, HS256 with the public key,
    unknown kid, a key that signs for another algorithm, a forged signature, garbage: 401."""
    upstream.publish(*provider_keys.values())
    rsa, ec = provider_keys["RS256"], provider_keys["ES256"]
    impostor = make_key(rsa.kid, "RS256")  # same kid, another key
    bad_tokens = {
        "issuer": rsa.sign(claims(iss="https://evil.test/")),
        "audience": rsa.sign(claims(aud="someone-else")),
        "expired": rsa.sign(claims(exp=START - 31)),
        "not yet valid": rsa.sign(claims(nbf=START + 120)),
        "issued in the future": rsa.sign(claims(iat=START + 120)),
        "no exp": rsa.sign(claims(exp=None)),
        "no sub": rsa.sign(claims(sub=None)),
        "alg none": f"{b64({'alg': 'none', 'kid': rsa.kid})}.{b64(claims())}.",
        "hs256 with public key": hs256_with_public_key(rsa),
        "unknown kid": make_key("kid-unknown", "RS256").sign(claims()),
        "alg/key mismatch": rsa.sign(claims(), kid=ec.kid),
        "forged": impostor.sign(claims()),
        "garbage": "a.b.c",
        "half": rsa.sign(claims())[:-10],
    }
    async with in_process(idp_settings, clock) as http:
        for name, token in bad_tokens.items():
            response = await http.get("/v1/auth", headers=bearer(token))
            assert response.status_code == 401, name
        for headers in (
            {"Authorization": "Bearer"},
            {"Authorization": "Token x"},
            {"Authorization": "Bearer " + "A" * 4000},
        ):
            assert (await http.get("/v1/auth", headers=headers)).status_code == 401


async def test_unknown_kids_refetch_at_most_once_per_interval(
    idp_settings: Settings,
    clock: FakeClock,
    upstream: Upstream,
    provider_keys: dict[str, SigningKey],
) -> None:
    """A burst of made-up kids causes one refetch per interval, not one per request."""
    upstream.publish(*provider_keys.values())
    async with in_process(idp_settings, clock) as http:
        assert (
            await http.get("/v1/auth", headers=bearer(provider_keys["RS256"].sign(claims())))
        ).status_code == 200
        assert upstream.fetches() == 1
        clock.advance(31)
        for i in range(20):
            token = make_key(f"made-up-{i}", "ES256").sign(
                claims(iat=int(clock()), exp=int(clock()) + 60)
            )
            assert (await http.get("/v1/auth", headers=bearer(token))).status_code == 401
        assert upstream.fetches() == 2
        metrics = (await http.get("/metrics")).text
    assert 'upload_auth_jwks_fetches_total{outcome="ok"} 2.0' in metrics


async def test_key_rotation_mid_test(
    idp_settings: Settings,
    clock: FakeClock,
    upstream: Upstream,
) -> None:
    """The provider adds a new key: tokens with its kid work after one refetch; once the old
    key is gone from the JWKS and the cache expires, the old key's tokens stop working."""
    old, new = make_key("2026-old", "RS256"), make_key("2026-new", "ES256")
    upstream.publish(old)
    async with in_process(idp_settings, clock) as http:

        async def status(key: SigningKey) -> int:
            now = int(clock())
            token = key.sign(claims(iat=now, exp=now + 300))
            return (await http.get("/v1/auth", headers=bearer(token))).status_code

        assert await status(old) == 200
        upstream.publish(old, new)
        clock.advance(31)
        assert await status(new) == 200
        upstream.publish(new)
        assert await status(old) == 200  # still cached
        clock.advance(601)
        assert await status(new) == 200
        assert await status(old) == 401


async def test_provider_down_is_503_not_an_open_door(
    make_settings: Callable[..., Settings], clock: FakeClock, provider_keys: dict[str, SigningKey]
) -> None:
    """No JWKS can be fetched: 503 with Retry-After."""
    from tests.support.servers import free_port

    settings = make_settings(
        dev_mode=False,
        callers=CallersConfig(
            idp=IdpConfig(
                jwks_url=f"http://127.0.0.1:{free_port()}/jwks.json",
                issuer=ISSUER,
                audience=AUDIENCE,
                timeout=0.5,
            )
        ),
    )
    async with in_process(settings, clock) as http:
        response = await http.get("/v1/auth", headers=bearer(provider_keys["RS256"].sign(claims())))
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert response.json()["type"] == "/problems/auth-upstream-unavailable"


def test_jwks_must_be_https_except_on_loopback(make_settings: Callable[..., Settings]) -> None:
    """A JWKS over plain http to another host is a configuration error."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="https"):
        make_settings(
            callers=CallersConfig(
                idp=IdpConfig(
                    jwks_url="http://idp.example.com/jwks.json", issuer=ISSUER, audience=AUDIENCE
                )
            )
        )
    with pytest.raises(ValidationError):
        make_settings(
            callers=CallersConfig(
                idp=IdpConfig(
                    jwks_url="https://idp.example.com/jwks.json",
                    issuer=ISSUER,
                    audience=AUDIENCE,
                    algorithms=["HS256"],
                )
            )
        )


async def test_a_provider_that_is_down_is_asked_once_then_after_a_backoff(
    make_settings: Callable[..., Settings], clock: FakeClock, provider_keys: dict[str, SigningKey]
) -> None:
    """Before the keys were ever loaded, ten requests (five at once, five after) while the
    provider fails cause one fetch; the next comes after a second, the one after that after
    two more; once it answers, the keys are used."""
    import asyncio

    with upstream_server() as upstream:
        upstream.fail_jwks = True
        settings = make_settings(
            dev_mode=False,
            callers=CallersConfig(
                idp=IdpConfig(
                    jwks_url=upstream.url + "/jwks.json", issuer=ISSUER, audience=AUDIENCE
                )
            ),
            profiles={"avatar": ProfileConfig(allow_v1=True)},
            default_profile="avatar",
        )
        token = bearer(provider_keys["ES256"].sign(claims()))
        async with in_process(settings, clock) as http:

            async def status() -> int:
                return (await http.get("/v1/auth", headers=token)).status_code

            at_once = await asyncio.gather(*(status() for _ in range(5)))
            after = [await status() for _ in range(5)]
            assert at_once + after == [503] * 10
            assert upstream.fetches() == 1
            clock.advance(1)
            assert await status() == 503
            assert upstream.fetches() == 2
            clock.advance(1)
            assert await status() == 503  # backing off for two seconds now
            assert upstream.fetches() == 2
            clock.advance(1)
            upstream.fail_jwks = False
            upstream.publish(*provider_keys.values())
            assert await status() == 200
            assert upstream.fetches() == 3


async def test_a_cold_cache_fetches_the_key_set_once_however_requests_arrive(
    idp_settings: Settings,
    clock: FakeClock,
    upstream: Upstream,
    provider_keys: dict[str, SigningKey],
) -> None:
    """The provider takes half a second to answer: requests that arrive before the fetch and
    while it is under way all wait for it, and the key set is fetched once (#33: it was
    fetched again by every request that came after the fetch began)."""
    import asyncio

    upstream.publish(*provider_keys.values())
    upstream.jwks_delay = 0.5
    token = bearer(provider_keys["ES256"].sign(claims()))
    async with in_process(idp_settings, clock) as http:

        async def ask(after: float) -> int:
            await asyncio.sleep(after)
            return (await http.post("/v2/token", json=FILE, headers=token)).status_code

        statuses = await asyncio.gather(*(ask(0.02 * n) for n in range(20)))
    assert statuses == [200] * 20
    assert upstream.fetches() == 1


async def test_each_refusal_says_which_check_failed(
    idp_settings: Settings,
    clock: FakeClock,
    upstream: Upstream,
    provider_keys: dict[str, SigningKey],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A wrong audience, issuer, kid or clock is counted by reason in /metrics and logged at
    info once per reason (a burst is one line), never with the token (#33)."""
    upstream.publish(*provider_keys.values())
    rsa = provider_keys["RS256"]
    tokens = {
        "audience": rsa.sign(claims(aud="someone-else")),
        "issuer": rsa.sign(claims(iss="https://evil.test/")),
        "unknown-kid": make_key("kid-unknown", "RS256").sign(claims()),
        "expired": rsa.sign(claims(exp=START - 31)),
        "signature": make_key(rsa.kid, "RS256").sign(claims()),
        "caller-claim": rsa.sign(claims(sub=None)),
        "algorithm": rsa.sign(claims(), kid=provider_keys["ES256"].kid),
    }
    async with in_process(idp_settings, clock) as http:
        for token in tokens.values():
            for _ in range(3):
                assert (await http.get("/v1/auth", headers=bearer(token))).status_code == 401
        metrics = (await http.get("/metrics")).text
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if "token refused" in line]
    assert sorted(line["reason"] for line in lines) == sorted(tokens)
    assert all(token not in out for token in tokens.values())
    for reason in tokens:
        assert f'upload_auth_idp_refusals_total{{reason="{reason}"}} 3.0' in metrics


async def test_a_jwks_url_that_is_not_a_key_set_is_said_so(
    idp_settings: Settings,
    clock: FakeClock,
    upstream: Upstream,
    provider_keys: dict[str, SigningKey],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """jwks_url pointed at something that is not a key set (the discovery document, say):
    the provider's users get 503, and the log says the fetch failed and why (#33)."""
    (idp,) = idp_settings.callers.idp
    wrong = idp.model_copy(update={"jwks_url": upstream.url + "/.well-known/openid-configuration"})
    settings = idp_settings.model_copy(
        update={"callers": idp_settings.callers.model_copy(update={"idp": [wrong]})}
    )
    token = provider_keys["ES256"].sign(claims())
    async with in_process(settings, clock) as http:
        assert (await http.get("/v1/auth", headers=bearer(token))).status_code == 503
    fetches = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if "key set not fetched" in line
    ]
    assert len(fetches) == 1
    assert fetches[0]["level"] == "warning"
    assert fetches[0]["url"].endswith("/.well-known/openid-configuration")


async def test_a_token_without_kid_is_verified_by_a_one_key_set_only(
    idp_settings: Settings,
    clock: FakeClock,
    upstream: Upstream,
    provider_keys: dict[str, SigningKey],
) -> None:
    """A token that names no key is verified against the provider's only key (with or
    without a kid of its own); with several keys published it is refused, never guessed (#33)."""
    es = provider_keys["ES256"]
    unnamed = jwt.encode(claims(), es.private, algorithm="ES256")  # no kid in the header
    assert "kid" not in jwt.get_unverified_header(unnamed)
    async with in_process(idp_settings, clock) as http:
        upstream.publish(es)
        assert (await http.get("/v1/auth", headers=bearer(unnamed))).status_code == 200
    upstream.jwks = {"keys": [{k: v for k, v in es.public_jwk.items() if k != "kid"}]}
    async with in_process(idp_settings, clock) as http:
        assert (await http.get("/v1/auth", headers=bearer(unnamed))).status_code == 200
    upstream.publish(*provider_keys.values())
    async with in_process(idp_settings, clock) as http:
        assert (await http.get("/v1/auth", headers=bearer(unnamed))).status_code == 401


async def statuses(settings: Settings, clock: FakeClock, tokens: dict[str, str]) -> dict[str, int]:
    async with in_process(settings, clock) as http:
        return {
            name: (await http.post("/v2/token", json=FILE, headers=bearer(token))).status_code
            for name, token in tokens.items()
        }


async def test_several_audiences_and_where_providers_put_them(
    make_settings: Callable[..., Settings], clock: FakeClock, upstream: Upstream
) -> None:
    """Two client ids (an iOS and an Android app) both accepted, a third not; Cognito's access
    tokens carry the client in ``client_id`` and Clerk's session tokens in ``azp``, with no
    ``aud``: accepted where the provider is set up so, refused where the claim is missing."""
    key = make_key("k", "RS256")
    upstream.publish(key)
    two_apps = provider_settings(make_settings, upstream, audience=["ios", "android"])
    found = await statuses(
        two_apps,
        clock,
        {
            "ios": key.sign(claims(aud="ios")),
            "android": key.sign(claims(aud="android")),
            "both listed": key.sign(claims(aud=["web", "android"])),
            "web": key.sign(claims(aud="web")),
        },
    )
    assert found == {"ios": 200, "android": 200, "both listed": 200, "web": 401}
    for claim in ("client_id", "azp"):
        settings = provider_settings(
            make_settings, upstream, audience="app-client", audience_claim=claim
        )
        found = await statuses(
            settings,
            clock,
            {
                "named": key.sign(claims(aud=None, **{claim: "app-client"})),
                "another": key.sign(claims(aud=None, **{claim: "other-client"})),
                "missing": key.sign(claims(aud=None)),
            },
        )
        assert found == {"named": 200, "another": 401, "missing": 401}, claim


async def test_required_scopes_in_every_shape_providers_use(
    make_settings: Callable[..., Settings], clock: FakeClock, upstream: Upstream
) -> None:
    """``scope`` as a space-separated string (RFC 9068, Auth0, Cognito), ``scp`` as a list
    (Okta) or a string (Entra ID): every required scope must be granted."""
    key = make_key("k", "ES256")
    upstream.publish(key)
    settings = provider_settings(make_settings, upstream, scopes=["upload", "profile"])
    found = await statuses(
        settings,
        clock,
        {
            "scope": key.sign(claims(scope="openid upload profile")),
            "scp list": key.sign(claims(scp=["upload", "profile"])),
            "scp string": key.sign(claims(scp="profile upload")),
            "one missing": key.sign(claims(scope="openid upload")),
            "none": key.sign(claims()),
        },
    )
    assert found == {
        "scope": 200,
        "scp list": 200,
        "scp string": 200,
        "one missing": 401,
        "none": 401,
    }


async def test_keys_without_alg_serve_their_key_types_algorithms_only(
    make_settings: Callable[..., Settings], clock: FakeClock, upstream: Upstream
) -> None:
    """A JWK that names no algorithm (as many providers publish them) verifies PS256 and RS256
    tokens if it is RSA, never an ES256 token; a key for encryption verifies nothing; a token
    naming an algorithm the operator did not allow is refused before any key is used."""
    rsa = make_key("rsa", "PS256")
    ec = make_key("ec", "ES256")
    bare = {k: v for k, v in rsa.public_jwk.items() if k != "alg"}
    sealed = {**{k: v for k, v in ec.public_jwk.items() if k != "alg"}, "use": "enc"}
    upstream.jwks = {"keys": [bare, sealed]}
    rs256 = SigningKey("rsa", "RS256", rsa.private, bare)
    ps512 = SigningKey("rsa", "PS512", rsa.private, bare)
    settings = provider_settings(make_settings, upstream)
    found = await statuses(
        settings,
        clock,
        {
            "PS256": rsa.sign(claims()),
            "RS256": rs256.sign(claims()),
            "PS512": ps512.sign(claims()),
            "ES256 under the RSA key": jwt.encode(
                claims(), ec.private, algorithm="ES256", headers={"kid": "rsa"}
            ),
            "an encryption key": ec.sign(claims()),
        },
    )
    assert found == {
        "PS256": 200,
        "RS256": 200,
        "PS512": 200,
        "ES256 under the RSA key": 401,
        "an encryption key": 401,
    }
    only_ps256 = provider_settings(make_settings, upstream, algorithms=["PS256"])
    assert await statuses(only_ps256, clock, {"RS256": rs256.sign(claims())}) == {"RS256": 401}


async def test_a_caller_id_is_one_to_256_characters(
    make_settings: Callable[..., Settings], clock: FakeClock, upstream: Upstream
) -> None:
    key = make_key("k", "EdDSA")
    upstream.publish(key)
    settings = provider_settings(make_settings, upstream)
    found = await statuses(
        settings,
        clock,
        {
            "256": key.sign(claims(sub="u" * 256)),
            "257": key.sign(claims(sub="u" * 257)),
            "empty": key.sign(claims(sub="")),
            "a number": key.sign(claims(sub=42)),
        },
    )
    assert found == {"256": 200, "257": 401, "empty": 401, "a number": 401}


def test_provider_settings_that_cannot_work_are_refused() -> None:
    """Two providers for one issuer or in one namespace (their callers would merge), and an
    issuer that cannot be discovered without jwks_url (not https), are setting errors."""
    jwks = "https://a.test/jwks.json"
    with pytest.raises(ValidationError, match="share the issuer"):
        CallersConfig(
            idp=[
                IdpConfig(issuer="https://a.test", audience="x", jwks_url=jwks, namespace="a"),
                IdpConfig(issuer="https://a.test", audience="y", jwks_url=jwks, namespace="b"),
            ]
        )
    with pytest.raises(ValidationError, match="share the namespace 'idp'"):
        CallersConfig(
            idp=[
                IdpConfig(issuer="https://a.test", audience="x"),
                IdpConfig(issuer="https://b.test", audience="x"),
            ]
        )
    with pytest.raises(ValidationError, match="cannot be discovered"):
        IdpConfig(issuer="http://idp.example.com", audience="x")
    assert IdpConfig(issuer="http://idp.example.com", audience="x", jwks_url=jwks).audience == ["x"]
