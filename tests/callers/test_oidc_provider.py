"""The credential service against a real, certified OpenID provider (panva's oidc-provider from
npm, on loopback), each docs/security.md recipe as an operator sets it up: keys found by
discovery from the issuer, access tokens from the client-credentials grant (RFC 9068 JWTs,
audience and scope checked), rotation, a kid reused for a new key, several issuers, and a
wrong set-up stopping the start with one line (#33). Authorization code + PKCE in Chromium:
tests/browser/test_oidc_pkce.py."""

import json
import re
import secrets
import subprocess
import time
import tomllib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.apps import new_private_key, new_public_key
from tests.support.oidc import (
    API_AUDIENCE,
    RESOURCE,
    SCOPE,
    OidcProvider,
    backend_client,
    oidc_provider,
    web_client,
)
from tests.support.servers import BIN, Server, clean_env, free_port, running

pytestmark = pytest.mark.e2e

FILE = {"fileName": "me.png", "fileSize": 100, "mimeType": "image/png"}
SECRET = secrets.token_urlsafe(32)


def provider_entry(provider: OidcProvider, **extra: Any) -> dict[str, Any]:
    """A ``[[callers.idp]]`` entry for ``provider``: discovery from its issuer."""
    return {"issuer": provider.issuer, "audience": API_AUDIENCE, **extra}


def service_env(providers: list[dict[str, Any]]) -> dict[str, str]:
    return clean_env(
        IMAGEKIT_PUBLIC_KEY=new_public_key(),
        IMAGEKIT_PRIVATE_KEY=new_private_key(),
        UPLOAD_AUTH_CALLERS=json.dumps({"idp": providers}),
        UPLOAD_AUTH_PROFILES=json.dumps({"avatar": {"folder": "/users/{caller}"}}),
        UPLOAD_AUTH_DEFAULT_PROFILE="avatar",
    )


@contextmanager
def service(root: Path, providers: list[dict[str, Any]]) -> Iterator[Server]:
    with running(["serve"], env=service_env(providers), log=root / "service.log") as server:
        yield server


def ask(server: Server, token: str) -> httpx.Response:
    return httpx.post(
        server.url + "/v2/token", json=FILE, headers={"Authorization": f"Bearer {token}"}
    )


def refusals(server: Server, reason: str) -> float:
    metrics = httpx.get(server.url + "/metrics").text
    for line in metrics.splitlines():
        if line.startswith(f'upload_auth_idp_refusals_total{{reason="{reason}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_client_credentials_access_tokens_with_keys_found_by_discovery(tmp_path: Path) -> None:
    """The recipe for a back end's access tokens: issuer only (the key set found by discovery),
    the API's audience, the scope required. A token is the caller its sub names; one without
    the scope is refused, and the refusal metric says so."""
    with (
        oidc_provider(
            tmp_path,
            clients=[backend_client(SECRET)],
            keys=[{"kid": "ps", "alg": "PS256"}],
            resource_alg="PS256",
        ) as provider,
        service(tmp_path, [provider_entry(provider, scopes=[SCOPE])]) as server,
    ):
        granted = ask(server, provider.client_credentials(SECRET))
        assert granted.status_code == 200, granted.text
        assert granted.json()["fields"]["folder"] == "/users/idp-backend"
        unscoped = ask(server, provider.client_credentials(SECRET, scope=""))
        assert unscoped.status_code == 401
        assert unscoped.headers["www-authenticate"].startswith("Bearer")
        assert refusals(server, "scope") == 1
        log = server.output()
    assert "identity provider's key set fetched" in log
    assert SECRET not in log


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA", "Ed25519"])
def test_every_signature_algorithm_the_provider_offers(tmp_path: Path, alg: str) -> None:
    """Access tokens signed with each algorithm (Ed25519: RFC 9864's fully-specified name)."""
    with (
        oidc_provider(
            tmp_path,
            clients=[backend_client(SECRET)],
            keys=[{"kid": alg.lower(), "alg": alg}],
            resource_alg=alg,
        ) as provider,
        service(tmp_path, [provider_entry(provider)]) as server,
    ):
        granted = ask(server, provider.client_credentials(SECRET))
    assert granted.status_code == 200, granted.text


def test_rotation_and_a_kid_reused_for_a_new_key(tmp_path: Path) -> None:
    """The provider rotates to a new kid: its tokens are accepted at once (an unknown kid
    prompts a refetch). Then it reuses that kid for a new key: the first token fails under the
    cached key, the set is fetched again, and the token is accepted; a token of the removed
    key is refused."""
    with (
        oidc_provider(
            tmp_path, clients=[backend_client(SECRET)], keys=[{"kid": "one", "alg": "RS256"}]
        ) as provider,
        service(tmp_path, [provider_entry(provider, refetch_seconds=1)]) as server,
    ):
        old = provider.client_credentials(SECRET)
        assert ask(server, old).status_code == 200
        es256 = {**provider.spec["resource"], "alg": "ES256"}
        provider.start(keys=[{"kid": "two", "alg": "ES256"}], resource=es256)
        time.sleep(1.1)
        assert ask(server, provider.client_credentials(SECRET)).status_code == 200
        provider.start()  # the same kid "two", a new key
        time.sleep(1.1)
        reused = ask(server, provider.client_credentials(SECRET))
        assert reused.status_code == 200, reused.text
        time.sleep(1.1)
        assert ask(server, old).status_code == 401  # its key is gone from the set
        metrics = httpx.get(server.url + "/metrics").text
    assert 'upload_auth_jwks_fetches_total{outcome="ok"} 4.0' in metrics


def test_several_issuers_each_in_its_own_namespace(tmp_path: Path) -> None:
    """Two providers (two tenants): each one's tokens are its own callers, under its own
    namespace, so the same sub from both is two identities; a third issuer is refused."""
    with (
        oidc_provider(tmp_path, clients=[backend_client(SECRET)]) as first,
        oidc_provider(tmp_path, clients=[backend_client(SECRET)]) as second,
        oidc_provider(tmp_path, clients=[backend_client(SECRET)]) as stranger,
        service(
            tmp_path,
            [
                provider_entry(first, namespace="alpha"),
                provider_entry(second, namespace="beta"),
            ],
        ) as server,
    ):
        folders = [
            ask(server, provider.client_credentials(SECRET)).json()["fields"]["folder"]
            for provider in (first, second)
        ]
        assert ask(server, stranger.client_credentials(SECRET)).status_code == 401
        assert refusals(server, "issuer") == 1
    assert folders == ["/users/alpha-backend", "/users/beta-backend"]


def start_serve(tmp_path: Path, providers: list[dict[str, Any]]) -> subprocess.Popen[str]:
    port = free_port()
    return subprocess.Popen(
        [str(BIN / "upload-auth"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=service_env(providers),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )


def test_a_wrong_set_up_is_one_line_at_start(tmp_path: Path) -> None:
    """A set-up that cannot work stops ``serve`` with exit 2 and one line naming the provider
    and the mistake: no discovery document at the issuer, a discovery document naming another
    issuer (a trailing slash), a jwks_url that is not a key set (the discovery document)."""
    with oidc_provider(tmp_path, clients=[backend_client(SECRET)]) as provider:
        issuer = provider.issuer
        mistakes = {
            "no discovery document": {"issuer": issuer + "/tenant"},
            "names the issuer": {"issuer": issuer + "/"},
            "not a JSON Web Key Set": {
                "issuer": issuer,
                "jwks_url": issuer + "/.well-known/openid-configuration",
            },
        }
        for expected, entry in mistakes.items():
            run = start_serve(tmp_path, [{**entry, "audience": API_AUDIENCE}])
            _, err = run.communicate(timeout=30)
            assert run.returncode == 2, expected
            lines = err.strip().splitlines()
            assert len(lines) == 1, err
            assert lines[0].startswith("upload-auth: config error: identity provider "), err
            assert expected in lines[0], err


def test_a_provider_down_at_start_is_a_warning_and_the_start_goes_on(tmp_path: Path) -> None:
    """Nobody listening at the issuer yet: a warning line, and the service starts (the
    provider's users get 503 until it answers)."""
    nobody = f"http://127.0.0.1:{free_port()}"
    with service(tmp_path, [{"issuer": nobody, "audience": API_AUDIENCE}]) as server:
        assert httpx.get(server.url + "/healthz").status_code == 200
        token = "eyJhbGciOiJSUzI1NiJ9." + "e30" + ".c2ln"
        assert ask(server, token).status_code == 401  # an unknown issuer needs no keys
        output = server.output()
    assert f"upload-auth: warning: identity provider {nobody}: ConnectError" in output


SECURITY_DOC = Path(__file__).parents[2] / "docs" / "security.md"
RECIPE = re.compile(r"<!-- recipe: ([a-z-]+) -->\n```toml\n(.*?)```", re.DOTALL)


def recipes() -> list[tuple[str, str]]:
    found = RECIPE.findall(SECURITY_DOC.read_text())
    assert len(found) >= 4, "docs/security.md lost its identity-provider recipes"
    return found


def provider_for(kind: str, entry: dict[str, Any]) -> dict[str, Any]:
    """The real provider's set-up that issues the tokens a recipe entry expects."""
    audiences = entry["audience"] if isinstance(entry["audience"], list) else [entry["audience"]]
    if kind == "id-token":
        clients = [{**web_client(REDIRECT), "client_id": audience} for audience in audiences]
        return {"clients": clients}
    scope = " ".join(entry.get("scopes", [SCOPE]))
    if kind == "client-id":  # the client id is the audience; aud is some other API
        return {"clients": [{**backend_client(SECRET), "client_id": audiences[0]}]}
    return {
        "clients": [backend_client(SECRET)],
        "resource": {"indicator": RESOURCE, "audience": audiences[0], "scope": scope},
    }


REDIRECT = "http://127.0.0.1:9/callback"


def token_for(kind: str, provider: OidcProvider, entry: dict[str, Any]) -> str:
    if kind == "id-token":
        audiences = entry["audience"]
        client = audiences[-1] if isinstance(audiences, list) else audiences
        return str(provider.authorization_code(client, REDIRECT, "alice")["id_token"])
    client = provider.spec["clients"][0]["client_id"]
    scope = " ".join(entry.get("scopes", [SCOPE]))
    answer = httpx.post(
        provider.issuer + "/token",
        data={"grant_type": "client_credentials", "resource": RESOURCE, "scope": scope},
        auth=(client, SECRET),
        timeout=10,
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


@pytest.mark.parametrize("index", range(4))
def test_each_recipe_in_the_docs_works_as_written(tmp_path: Path, index: int) -> None:
    """Each identity-provider recipe of docs/security.md, as written, with the real provider's
    issuer in place of the example's (keys by discovery): every provider it names issues a
    token of the recipe's kind, and the service grants a credential to it."""
    kind, text = recipes()[index]
    config = tomllib.loads(text)
    entries = config["callers"]["idp"]
    entries = entries if isinstance(entries, list) else [entries]
    with ExitStack() as stack:
        providers = [
            stack.enter_context(oidc_provider(tmp_path, **provider_for(kind, entry)))
            for entry in entries
        ]
        for entry, provider in zip(entries, providers, strict=True):
            text = text.replace(f'"{entry["issuer"]}"', f'"{provider.issuer}"')
        (tmp_path / "config.toml").write_text(text)
        env = service_env([]) | {"UPLOAD_AUTH_CONFIG_FILE": str(tmp_path / "config.toml")}
        for name in ("UPLOAD_AUTH_CALLERS", "UPLOAD_AUTH_PROFILES", "UPLOAD_AUTH_DEFAULT_PROFILE"):
            env.pop(name)
        if "profiles" not in config:  # the recipe is about callers: any profile will do
            env["UPLOAD_AUTH_PROFILES"] = json.dumps({"any": {"folder": "/users/{caller}"}})
            env["UPLOAD_AUTH_DEFAULT_PROFILE"] = "any"
        server = stack.enter_context(running(["serve"], env=env, log=tmp_path / "service.log"))
        for entry, provider in zip(entries, providers, strict=True):
            granted = ask(server, token_for(kind, provider, entry))
            assert granted.status_code == 200, (kind, entry, granted.text)
            namespace = entry.get("namespace", "idp")
            assert f"/{namespace}-" in granted.json()["fields"]["folder"]
