"""Real HTTP servers on loopback standing in for the outside world: an identity provider's JWKS
endpoint and an app's session check. Threads of the test process, on free ports."""

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from tests.support.servers import serving


@dataclass
class SigningKey:
    """A provider key: the private half signs tokens, the public half is in the JWKS."""

    kid: str
    alg: str
    private: Any
    public_jwk: dict[str, Any]

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(
            claims, self.private, algorithm=self.alg, headers={"kid": self.kid, **header}
        )


def make_key(kid: str, alg: str) -> SigningKey:
    """A fresh key pair for ``alg`` (RS* or PS*, ES256, EdDSA), generated now."""
    private: Any
    if alg[:2] in ("RS", "PS"):
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
        jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    else:
        private = ed25519.Ed25519PrivateKey.generate()
        jwk = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return SigningKey(kid, alg, private, {**jwk, "kid": kid, "alg": alg, "use": "sig"})


@dataclass
class Upstream:
    url: str
    requests: list[dict[str, str]] = field(default_factory=list)
    jwks: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    #: Answer the JWKS with a 500, as a provider that is down.
    fail_jwks: bool = False
    #: Seconds the JWKS takes to answer (a slow provider).
    jwks_delay: float = 0.0

    def publish(self, *keys: SigningKey) -> None:
        self.jwks = {"keys": [k.public_jwk for k in keys]}

    def fetches(self) -> int:
        return sum(1 for r in self.requests if r["path"] == "/jwks.json")


def _handler(upstream: Upstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def _send(
            self, status: int, body: Any = None, headers: dict[str, str] | None = None
        ) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            upstream.requests.append(
                {
                    "path": self.path,
                    "cookie": self.headers.get("Cookie", ""),
                    "authorization": self.headers.get("Authorization", ""),
                    "other": ",".join(sorted(self.headers.keys())),
                }
            )
            if self.path == "/jwks.json":
                time.sleep(upstream.jwks_delay)
                if upstream.fail_jwks:
                    self._send(500, {"error": "down"})
                else:
                    self._send(200, upstream.jwks)
                return
            session = self.headers.get("Cookie", "").removeprefix("session=")
            if session in ("alice", "bob"):
                self._send(200, {"ok": True}, {"X-Caller-Id": session})
            elif session == "bob-json":
                self._send(200, {"id": "bob"})
            elif session == "slow":
                time.sleep(3)
                self._send(200, {}, {"X-Caller-Id": "late"})
            elif session == "broken":
                self._send(500, {"error": "boom"})
            elif session == "nobody":
                self._send(200, {})
            else:
                self._send(401, {"error": "not signed in"})

    return Handler


@contextmanager
def upstream_server() -> Iterator[Upstream]:
    """Serve JWKS at /jwks.json and a session check everywhere else, on a free port."""
    upstream = Upstream("")
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), _handler(upstream))) as url:
        upstream.url = url
        yield upstream
