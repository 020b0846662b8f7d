"""Authorization code + PKCE in Chromium against a real, certified OpenID provider (panva's
oidc-provider from npm): a browser app signs the user in, exchanges the code with its PKCE
verifier, and asks upload-auth for a credential with the ID token, which upload-auth verifies
with keys found by discovery (#33: docs/security.md's browser-app recipe)."""

import functools
import json
import shutil
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.support.apps import new_private_key, new_public_key
from tests.support.oidc import oidc_provider, web_client
from tests.support.servers import clean_env, running, serving

APP = Path(__file__).parent / "oidc_app"


def test_sign_in_with_pkce_then_ask_for_a_credential(page: Page, tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(APP, site)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(site))
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), handler)) as app:
        redirect = app + "/cb.html"
        with oidc_provider(
            tmp_path,
            clients=[web_client(redirect, alg="EdDSA")],
            keys=[{"kid": "ed", "alg": "EdDSA"}],
        ) as provider:
            env = clean_env(
                IMAGEKIT_PUBLIC_KEY=new_public_key(),
                IMAGEKIT_PRIVATE_KEY=new_private_key(),
                UPLOAD_AUTH_CALLERS=json.dumps(
                    {"idp": {"issuer": provider.issuer, "audience": "web"}}
                ),
                UPLOAD_AUTH_PROFILES=json.dumps({"avatar": {"folder": "/users/{caller}"}}),
                UPLOAD_AUTH_DEFAULT_PROFILE="avatar",
                UPLOAD_AUTH_CORS_ORIGINS=json.dumps([app]),
            )
            with running(["serve"], env=env, log=tmp_path / "service.log") as service:
                config = {"issuer": provider.issuer, "redirect": redirect, "service": service.url}
                (site / "config.js").write_text(f"const CONFIG = {json.dumps(config)};\n")
                page.goto(app + "/index.html")
                page.fill("input[name=login]", "alice")
                page.fill("input[name=password]", "anything")
                page.click("button[type=submit]")
                page.click("button:has-text('Continue')")  # the consent prompt
                result = page.locator("#result")
                expect(result).not_to_have_text("working", timeout=15000)
                answer = json.loads(result.inner_text())
    assert answer["status"] == 200, answer
    assert answer["body"]["fields"]["folder"] == "/users/idp-alice"
