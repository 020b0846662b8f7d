"""A real OpenID provider for the identity-provider tests: panva's certified ``oidc-provider``
from npm (tests/browser/package.json), run with node on a free loopback port. Keys are made by
the provider at each start; a restart on the same port with other kids (or the same ones) is
a rotation (or a kid reused for a new key)."""

import base64
import hashlib
import json
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

from tests.support.servers import free_port, require_program, unavailable

BROWSER_TESTS = Path(__file__).parents[1] / "browser"
SCRIPT = BROWSER_TESTS / "oidc_provider.mjs"
#: The API's resource indicator, and the audience its access tokens carry.
RESOURCE = "urn:upload-auth"
API_AUDIENCE = "upload-auth"
SCOPE = "upload"


def backend_client(secret: str) -> dict[str, Any]:
    """A back end that asks for access tokens with its own credentials."""
    return {
        "client_id": "backend",
        "client_secret": secret,
        "grant_types": ["client_credentials"],
        "redirect_uris": [],
        "response_types": [],
    }


def web_client(redirect_uri: str, alg: str | None = None) -> dict[str, Any]:
    """A browser app: public, authorization code with PKCE, ID tokens signed with ``alg`` (by
    default the provider's first key's)."""
    client: dict[str, Any] = {
        "client_id": "web",
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "redirect_uris": [redirect_uri],
    }
    if alg is not None:
        client["id_token_signed_response_alg"] = alg
    return client


@dataclass
class OidcProvider:
    root: Path
    port: int
    spec: dict[str, Any]
    process: subprocess.Popen[bytes] | None = None
    starts: int = field(default=0)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, **changes: Any) -> None:
        """Start (again, on the same port) with the spec changed by ``changes``."""
        self.stop()
        self.spec = {**self.spec, **changes}
        self.starts += 1
        spec_file = self.root / f"oidc-spec-{self.port}-{self.starts}.json"
        spec_file.write_text(json.dumps(self.spec))
        with (self.root / f"oidc-{self.port}.log").open("ab") as log:
            self.process = subprocess.Popen(
                [require_program("node"), str(SCRIPT), str(self.port), str(spec_file)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=BROWSER_TESTS,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(self.log())
            try:
                found = httpx.get(self.issuer + "/.well-known/openid-configuration", timeout=1)
                if found.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("oidc-provider did not start:\n" + self.log())

    def log(self) -> str:
        return (self.root / f"oidc-{self.port}.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def client_credentials(self, secret: str, scope: str = SCOPE) -> str:
        """An access token (a JWT, RFC 9068) for the back-end client."""
        answer = httpx.post(
            self.issuer + "/token",
            data={"grant_type": "client_credentials", "resource": RESOURCE, "scope": scope},
            auth=("backend", secret),
            timeout=10,
        )
        answer.raise_for_status()
        token: str = answer.json()["access_token"]
        return token

    def authorization_code(self, client_id: str, redirect_uri: str, login: str) -> dict[str, Any]:
        """The tokens a public client gets by the authorization code flow with PKCE (S256), the
        user ``login`` signing in through the provider's forms as a browser would."""
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        with httpx.Client(follow_redirects=False, timeout=10) as http:
            answer = http.get(
                self.issuer + "/auth",
                params={
                    "client_id": client_id,
                    "response_type": "code",
                    "scope": "openid",
                    "redirect_uri": redirect_uri,
                    "code_challenge": challenge,
                    "code_challenge_method": "S256",
                },
            )
            for _ in range(10):
                if answer.is_redirect:
                    where = urljoin(str(answer.url), answer.headers["location"])
                    if where.startswith(redirect_uri):
                        code = parse_qs(urlsplit(where).query)["code"][0]
                        break
                    answer = http.get(where)
                    continue
                action = re.search(r'<form[^>]*action="([^"]+)"', answer.text)
                assert action is not None, answer.text
                fields = dict(
                    re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', answer.text)
                )
                if 'name="login"' in answer.text:
                    fields |= {"login": login, "password": "anything"}
                answer = http.post(urljoin(str(answer.url), action[1]), data=fields)
            else:
                raise AssertionError("the sign-in did not come back to the app")
            tokens = http.post(
                self.issuer + "/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect_uri,
                    "client_id": client_id,
                    "code_verifier": verifier,
                },
            )
        tokens.raise_for_status()
        found: dict[str, Any] = tokens.json()
        return found


@contextmanager
def oidc_provider(root: Path, **spec: Any) -> Iterator[OidcProvider]:
    """The provider on a free port, started with ``spec`` (keys, clients, and ``resource_alg``:
    the access tokens' algorithm, by default the first key's)."""
    if not (BROWSER_TESTS / "node_modules" / "oidc-provider").exists():
        unavailable("the oidc-provider npm package (./scripts/setup --test)")
    base: dict[str, Any] = {
        "keys": [{"kid": "k1", "alg": "RS256"}],
        "clients": [],
        "resource": {"indicator": RESOURCE, "audience": API_AUDIENCE, "scope": SCOPE},
    }
    keys = spec.get("keys", base["keys"])
    base["resource"] = {**base["resource"], "alg": spec.pop("resource_alg", keys[0]["alg"])}
    provider = OidcProvider(root, free_port(), {**base, **spec})
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()
