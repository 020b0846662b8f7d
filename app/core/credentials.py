"""Issuing and verifying upload credentials: v1 HMAC signatures and v2 HS256 JWTs.

Pure: takes key pairs and the current time as arguments, reads no clock and no config.

v1 (ImageKit client-side upload): ``signature = lowercase hex HMAC-SHA1(private key,
token + str(expire))``, ``token`` a UUID v4, ``expire`` absolute Unix seconds. Byte-identical to
the official SDK helpers (``imagekitio``'s ``helper.get_authentication_parameters``).

v2 (ImageKit secure client-side upload): a JWS in compact form. Decisions, all deliberate:

- one algorithm, HS256, keyed with the private key; any other ``alg`` (``none``, RS*, ES*, HS384)
  is refused before any key is looked at;
- header ``kid`` = the public key, the only way to find the key; it must be a string naming a
  configured pair, and nothing else in the header is trusted;
- header ``nonce`` (a JWS header parameter, as in RFC 8555): random, so two credentials for the
  same file in the same second are still two different single-use tokens (the payload must
  equal the form fields, so it cannot carry a ``jti``);
- payload = the upload form fields, every value a string, plus integer ``iat`` and ``exp``;
  ``exp - iat`` <= 3600 and ``iat`` not in the future (both with ``LEEWAY_SECONDS``);
- time is checked against the caller's clock, so tests control it;
- tokens are *encoded* and *verified* here, in the standard compact form, at a fraction of
  PyJWT's cost on the hot paths (docs/performance.md); the tests hold both to PyJWT: every
  issued token verifies with it, and it and ``verify_v2`` give the same verdicts.
"""

import binascii
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import orjson

from app.core.clock import LEEWAY_SECONDS, MAX_CREDENTIAL_LIFETIME
from app.core.entropy import random16
from app.core.fastjson import dumps
from app.core.keys import MAX_KEY_PAIRS, KeyPair, KeyRing

ALGORITHM: Final = "HS256"
TIME_CLAIMS: Final = frozenset({"iat", "exp"})


@dataclass(frozen=True, slots=True)
class SignedV1:
    token: str
    expire: int
    signature: str
    public_key: str


def v1_signature(pair: KeyPair, token: str, expire: int) -> str:
    """ImageKit's v1 signature: lowercase hex HMAC-SHA1 of ``token + str(expire)`` under the
    pair's private key (tested against ``hmac`` and the official SDK's helper)."""
    return pair.mac("sha1", f"{token}{expire}".encode()).hex()


def uuid4() -> str:
    """``str(uuid.uuid4())``: 122 random bits from the kernel, formatted directly rather than
    through ``uuid.UUID``, which validates and converts what it is given (docs/performance.md;
    tested against ``uuid.UUID``)."""
    raw = bytearray(random16())
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # the RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def issue_v1(pair: KeyPair, *, now: int, ttl: int) -> SignedV1:
    """A fresh single-use v1 credential that expires ``ttl`` seconds after ``now``."""
    token = uuid4()
    expire = now + ttl
    return SignedV1(token, expire, v1_signature(pair, token, expire), pair.public_key)


def issue_v2(pair: KeyPair, fields: Mapping[str, str], *, now: int, ttl: int) -> str:
    """A v2 JWT whose payload is exactly ``fields`` plus ``iat``/``exp``."""
    if not 0 < ttl <= MAX_CREDENTIAL_LIFETIME:
        raise ValueError("ttl out of range")
    if TIME_CLAIMS & fields.keys():
        raise ValueError("fields may not contain iat or exp")
    payload: dict[str, Any] = {**fields, "iat": now, "exp": now + ttl}
    before_nonce, after_nonce = _header_around_nonce(pair.public_key)
    header = before_nonce + _b64(random16()[:12]) + after_nonce
    signing_input = _b64(header) + b"." + _b64(dumps(payload))
    signature = pair.mac("sha256", signing_input)
    return (signing_input + b"." + _b64(signature)).decode()


@lru_cache(maxsize=2 * MAX_KEY_PAIRS)
def _header_around_nonce(kid: str) -> tuple[bytes, bytes]:
    """The JWS header's JSON before and after the nonce's value: ``{"alg": "HS256", "kid": kid,
    "nonce": ..., "typ": "JWT"}`` as compact JSON. The nonce is base64url, which JSON never
    escapes, so the per-token header is the nonce between these two."""
    before, after = dumps({"alg": ALGORITHM, "kid": kid, "nonce": "", "typ": "JWT"}).split(
        b'"nonce":""'
    )
    return before + b'"nonce":"', b'"' + after


_URL_SAFE: Final = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> bytes:
    """base64url without padding (RFC 7515 §2)."""
    return binascii.b2a_base64(data, newline=False).translate(_URL_SAFE).rstrip(b"=")


# -- verification (used by the upload API and by tests) ------------------------------------


class CredentialError(Exception):
    """A credential that must not be accepted."""


class InvalidToken(CredentialError):
    """Malformed, wrongly signed, unknown kid, wrong algorithm or impossible times."""


class ExpiredToken(CredentialError):
    """Well-formed and correctly signed, but past its ``exp``."""


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    pair: KeyPair
    fields: dict[str, str]
    iat: int
    exp: int


def verify_v2(token: str, ring: KeyRing, *, now: int) -> VerifiedToken:
    """Verify a v2 JWT against the key ring; returns its form fields and times.

    Verified here, not by PyJWT's decoder, which takes 65 µs a token where this takes a tenth
    (docs/performance.md) on the upload path; the tests hold both to the same verdicts
    (tests/unit/test_jwt_verify.py). What it accepts is narrow: the compact form's three
    segments, each canonical base64url (so no two strings carry the same token: the ledger
    burns the string), a JSON object header with ``alg`` HS256 and a ``kid`` naming a pair and
    neither ``crit`` nor ``b64`` (no extension is understood), the HMAC compared in constant
    time with the pair's pre-keyed state before the payload is read, a JSON object payload."""
    segments = token.split(".")
    if len(segments) != 3:
        raise InvalidToken("malformed token")
    header_segment, payload_segment, signature_segment = segments
    header = _json_object(header_segment)
    if header.get("alg") != ALGORITHM:
        raise InvalidToken("algorithm not allowed")
    if "crit" in header or "b64" in header:
        raise InvalidToken("unsupported header")
    kid = header.get("kid")
    pair = ring.get(kid) if isinstance(kid, str) else None
    if pair is None:
        raise InvalidToken("unknown kid")
    signature = _b64decode(signature_segment)
    expected = pair.mac("sha256", f"{header_segment}.{payload_segment}".encode())
    if not hmac.compare_digest(expected, signature):
        raise InvalidToken("bad signature or claims")
    payload = _json_object(payload_segment)
    iat, exp = payload.get("iat"), payload.get("exp")
    if type(iat) is not int or type(exp) is not int:
        raise InvalidToken("iat and exp must be integers")
    if exp - iat > MAX_CREDENTIAL_LIFETIME or exp <= iat:
        raise InvalidToken("lifetime out of range")
    if iat > now + LEEWAY_SECONDS:
        raise InvalidToken("issued in the future")
    fields = {k: v for k, v in payload.items() if k not in TIME_CLAIMS}
    if not all(isinstance(v, str) for v in fields.values()):
        raise InvalidToken("payload values must be strings")
    if exp + LEEWAY_SECONDS <= now:
        raise ExpiredToken("token expired")
    return VerifiedToken(pair, fields, iat, exp)


_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]*")
_TO_STANDARD: Final = bytes.maketrans(b"-_", b"+/")
#: The characters a segment may end with when its length is not a multiple of 4: those whose
#: unused low bits are zero (4 unused bits with 2 characters left over, 2 with 3), so that
#: ``_b64`` of its bytes gives the segment back exactly.
_LAST: Final = {2: frozenset("AQgw"), 3: frozenset("AEIMQUYcgkosw048")}


def _b64decode(segment: str) -> bytes:
    """A canonical base64url segment's bytes (no padding; the unused low bits zero, which
    ``_b64`` of the bytes gives back exactly)."""
    rest = len(segment) % 4
    if rest == 1 or not _BASE64URL.fullmatch(segment) or (rest and segment[-1] not in _LAST[rest]):
        raise InvalidToken("malformed token")
    return binascii.a2b_base64((segment + "=" * (-rest % 4)).encode().translate(_TO_STANDARD))


def _json_object(segment: str) -> dict[str, Any]:
    try:
        value = orjson.loads(_b64decode(segment))
    except ValueError:  # not JSON, not UTF-8, nested past the parser, or past its numbers
        raise InvalidToken("malformed token") from None
    if not isinstance(value, dict):
        raise InvalidToken("malformed token")
    return value
