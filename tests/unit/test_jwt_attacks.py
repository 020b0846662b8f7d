"""One test per known attack on JWT verification; each proves the token is refused."""

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.core import credentials
from app.core.clock import LEEWAY_SECONDS
from app.core.keys import KeyPair, KeyRing
from tests.support.apps import START, new_private_key, new_public_key

FIELDS = {"fileName": "cat.png", "folder": "/"}


@pytest.fixture
def pair() -> KeyPair:
    return KeyPair(new_public_key(), new_private_key().encode())


@pytest.fixture
def ring(pair: KeyPair) -> KeyRing:
    return KeyRing([pair])


def b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def forge(pair: KeyPair, payload: dict[str, Any], **header: Any) -> str:
    """A token HMAC-signed with the pair's key, with any header and payload we like.

    Built by hand: PyJWT itself refuses to encode some of the malformed headers tested here.
    """
    head = {"alg": "HS256", "typ": "JWT", "kid": pair.public_key, **header}
    digest = hashlib.sha512 if head["alg"] == "HS512" else hashlib.sha256
    signing_input = f"{b64(head)}.{b64(payload)}"
    signature = hmac.new(pair.private_key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(signature)}"


def good_payload(**changes: Any) -> dict[str, Any]:
    return {**FIELDS, "iat": START, "exp": START + 600, **changes}


def test_alg_none_is_refused(pair: KeyPair, ring: KeyRing) -> None:
    """An unsigned token (alg none) never verifies."""
    token = f"{b64({'alg': 'none', 'kid': pair.public_key})}.{b64(good_payload())}."
    with pytest.raises(credentials.InvalidToken):
        credentials.verify_v2(token, ring, now=START)


def test_hs_rs_confusion_is_refused(pair: KeyPair, ring: KeyRing) -> None:
    """A token claiming RS256 is refused before any key is used, whatever it is signed with."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    token = jwt.encode(good_payload(), pem, algorithm="RS256", headers={"kid": pair.public_key})
    with pytest.raises(credentials.InvalidToken, match="algorithm"):
        credentials.verify_v2(token, ring, now=START)


def test_other_hmac_algorithms_are_refused(pair: KeyPair, ring: KeyRing) -> None:
    """HS512 with the right key is still not the one algorithm we accept."""
    token = forge(pair, good_payload(), alg="HS512")
    with pytest.raises(credentials.InvalidToken, match="algorithm"):
        credentials.verify_v2(token, ring, now=START)


@pytest.mark.parametrize("kid", ["public_unknown", "../../etc/passwd", "", 7, ["x"], None])
def test_kid_tricks_are_refused(pair: KeyPair, ring: KeyRing, kid: Any) -> None:
    """A kid that is unknown, not a string, a path or missing finds no key."""
    token = forge(pair, good_payload(), kid=kid)
    with pytest.raises(credentials.InvalidToken, match=r"kid|malformed"):
        credentials.verify_v2(token, ring, now=START)


def test_kid_of_another_pair_does_not_borrow_its_trust(pair: KeyPair) -> None:
    """Signed with pair A's key but naming pair B: verified with B's key, so refused."""
    other = KeyPair(new_public_key(), new_private_key().encode())
    ring = KeyRing([pair, other])
    token = forge(pair, good_payload(), kid=other.public_key)
    with pytest.raises(credentials.InvalidToken, match="signature"):
        credentials.verify_v2(token, ring, now=START)


def test_expired_token_is_refused(pair: KeyPair, ring: KeyRing) -> None:
    """Past exp (beyond the leeway) is its own error: expired, not invalid."""
    token = credentials.issue_v2(pair, FIELDS, now=START, ttl=600)
    credentials.verify_v2(token, ring, now=START + 600 + LEEWAY_SECONDS - 1)
    with pytest.raises(credentials.ExpiredToken):
        credentials.verify_v2(token, ring, now=START + 600 + LEEWAY_SECONDS)


def test_future_iat_is_refused(pair: KeyPair, ring: KeyRing) -> None:
    """A token issued after now (beyond the leeway) is invalid."""
    token = forge(pair, good_payload(iat=START + LEEWAY_SECONDS + 1, exp=START + 900))
    with pytest.raises(credentials.InvalidToken, match="future"):
        credentials.verify_v2(token, ring, now=START)


@pytest.mark.parametrize(
    "changes",
    [{"exp": START + 3601}, {"exp": START}, {"iat": float(START)}, {"exp": str(START + 60)}],
)
def test_impossible_lifetimes_are_refused(
    pair: KeyPair, ring: KeyRing, changes: dict[str, Any]
) -> None:
    """exp - iat over an hour, not positive, or non-integer times are invalid."""
    token = forge(pair, good_payload(**changes))
    with pytest.raises(credentials.InvalidToken):
        credentials.verify_v2(token, ring, now=START)


@pytest.mark.parametrize("missing", ["iat", "exp"])
def test_missing_time_claims_are_refused(pair: KeyPair, ring: KeyRing, missing: str) -> None:
    """iat and exp are required."""
    payload = good_payload()
    del payload[missing]
    with pytest.raises(credentials.InvalidToken):
        credentials.verify_v2(forge(pair, payload), ring, now=START)


def test_non_string_fields_are_refused(pair: KeyPair, ring: KeyRing) -> None:
    """Every form field in the payload is a string, as ImageKit requires."""
    token = forge(pair, good_payload(useUniqueFileName=False))
    with pytest.raises(credentials.InvalidToken, match="strings"):
        credentials.verify_v2(token, ring, now=START)


def test_tampered_payload_fails_verification(pair: KeyPair, ring: KeyRing) -> None:
    """Changing one payload field after signing breaks the signature."""
    token = credentials.issue_v2(pair, FIELDS, now=START, ttl=600)
    header, _, signature = token.split(".")
    tampered = f"{header}.{b64(good_payload(folder='/someone-else'))}.{signature}"
    with pytest.raises(credentials.InvalidToken, match="signature"):
        credentials.verify_v2(tampered, ring, now=START)


def test_tampered_signature_fails_verification(pair: KeyPair, ring: KeyRing) -> None:
    """Flipping one character of the signature is caught."""
    token = credentials.issue_v2(pair, FIELDS, now=START, ttl=600)
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(credentials.InvalidToken):
        credentials.verify_v2(flipped, ring, now=START)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "....", "eyJ.eyJ.sig"])
def test_garbage_is_invalid_not_a_crash(ring: KeyRing, garbage: str) -> None:
    """Anything that is not a JWT is an InvalidToken, never another exception."""
    with pytest.raises(credentials.InvalidToken):
        credentials.verify_v2(garbage, ring, now=START)
