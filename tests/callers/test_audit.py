"""The audit trail and /metrics say what happened; no secret or credential reaches a log."""

import json
from collections.abc import Callable
from typing import Any

import pytest

from app.core.settings import ApiKeyConfig, CallersConfig, ProfileConfig, Settings
from tests.support.apps import START, FakeClock, in_process
from tests.support.idp import AUDIENCE, ISSUER
from tests.support.upstreams import SigningKey, Upstream

pytestmark = pytest.mark.anyio


def events(out: str, name: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("msg") == name]


async def test_audit_events_metrics_and_no_secrets(
    make_settings: Callable[..., Settings],
    clock: FakeClock,
    api_key: str,
    api_key_hash: str,
    private_key: str,
    upstream: Upstream,
    provider_keys: dict[str, SigningKey],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issued and refused credentials are logged with caller, profile, file and reason and
    counted in /metrics; the private key, API key, provider JWT, tokens and signatures never
    appear in the output."""
    from app.core.settings import IdpConfig

    upstream.publish(*provider_keys.values())
    settings = make_settings(
        dev_mode=False,
        callers=CallersConfig(
            api_keys=[ApiKeyConfig(name="backend", hash=api_key_hash)],
            idp=IdpConfig(jwks_url=upstream.url + "/jwks.json", issuer=ISSUER, audience=AUDIENCE),
        ),
        profiles={"avatar": ProfileConfig(max_size="1mb", types=["png"], allow_v1=True)},
        default_profile="avatar",
        rate_limit_v1="2/minute",
    )
    user_jwt = provider_keys["ES256"].sign(
        {"sub": "user-7", "iss": ISSUER, "aud": AUDIENCE, "iat": START, "exp": START + 60}
    )
    key_auth = {"Authorization": f"Bearer {api_key}"}
    async with in_process(settings, clock) as http:
        v1 = (await http.get("/v1/auth", headers=key_auth)).json()
        await http.get("/v1/auth", headers=key_auth)
        limited = await http.get("/v1/auth", headers=key_auth)
        v2 = (
            await http.post(
                "/v2/token",
                headers={"Authorization": f"Bearer {user_jwt}"},
                json={"fileName": "me.png", "fileSize": 500, "mimeType": "image/png"},
            )
        ).json()
        too_big = await http.post(
            "/v2/token",
            headers=key_auth,
            json={"fileName": "big.png", "fileSize": 2 * 1024 * 1024, "mimeType": "image/png"},
        )
        await http.get("/v1/auth", headers={"Authorization": "Bearer uak_wrong"})
        await http.post(
            "/v2/token",
            headers=key_auth,
            json={"fileName": private_key, "fileSize": 1, "mimeType": "x/y"},
        )
        metrics = (await http.get("/metrics")).text
    assert limited.status_code == 429
    assert too_big.status_code == 422
    out = capsys.readouterr().out

    issued = events(out, "credential.issued")
    assert [(e["version"], e["caller"], e.get("profile")) for e in issued] == [
        ("v1", "key:backend", "avatar"),
        ("v1", "key:backend", "avatar"),
        ("v2", "idp:user-7", "avatar"),
    ]
    assert (
        issued[2]
        | {
            "fileName": "me.png",
            "size": 500,
            "type": "image/png",
            "method": "idp",
            "expires_at": v2["expiresAt"],
        }
        == issued[2]
    )
    refused = events(out, "credential.refused")
    assert [(e["reason"], e["status"], e.get("caller")) for e in refused] == [
        ("rate-limited", 429, "key:backend"),
        ("file-too-large", 422, "key:backend"),
        ("unauthenticated", 401, None),
        ("invalid-file-name", 422, "key:backend"),
    ]
    assert refused[1]["fileName"] == "big.png"

    assert (
        'upload_auth_credentials_issued_total{method="api_key",profile="avatar",version="v1"} '
        "2.0" in metrics
    )
    assert (
        'upload_auth_credentials_issued_total{method="idp",profile="avatar",version="v2"} '
        "1.0" in metrics
    )
    assert (
        'upload_auth_credentials_refused_total{profile="avatar",reason="file-too-large",'
        'version="v2"} 1.0'
    ) in metrics
    assert 'upload_auth_rate_limited_total{limit="requests",version="v1"} 1.0' in metrics
    assert 'upload_auth_jwks_fetches_total{outcome="ok"} 1.0' in metrics
    assert (
        'upload_auth_request_duration_seconds_count{method="GET",route="/v1/auth",'
        'status="200"} 2.0' in metrics
    )

    for secret in (private_key, api_key, user_jwt, v1["token"], v1["signature"], v2["token"]):
        assert secret not in out
        assert secret not in metrics
