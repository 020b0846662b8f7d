"""``credentials.verify_v2`` against PyJWT, the library it stands in for on the upload path:
the same verdict on every token, good, forged, mutated character by character, re-encoded or
malformed, with PyJWT configured as the service configured it before (HS256 only, the pair
found by ``kid``, the times checked by our own rules on the decoded claims)."""

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core import credentials
from app.core.clock import LEEWAY_SECONDS, MAX_CREDENTIAL_LIFETIME
from app.core.keys import KeyPair, KeyRing

START = 1_780_000_000
PAIR = KeyPair("public_verify", b"private_" + bytes(range(48, 80)))
OTHER = KeyPair("public_other", b"private_" + bytes(range(80, 112)))
RING = KeyRing([PAIR, OTHER])
_DECODER = jwt.PyJWT(options={"enforce_minimum_key_length": True})
_OPTIONS: Any = {
    "verify_signature": True,
    "require": ["iat", "exp"],
    "verify_exp": False,
    "verify_iat": False,
    "verify_nbf": False,
    "verify_aud": False,
    "verify_iss": False,
}


def with_pyjwt(token: str, now: int = START) -> tuple[str, Any]:
    """The verdict as the service reached it with PyJWT (the code verify_v2 replaced), but for
    one thing: PyJWT accepts a segment with base64's ``=`` padding, which made one credential
    two strings, each burned apart in the ledger (``test_a_padded_token_is_refused``)."""
    if "=" in token:
        return "invalid", None
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        return "invalid", None
    kid = header.get("kid")
    pair = RING.get(kid) if isinstance(kid, str) else None
    if header.get("alg") != "HS256" or pair is None:
        return "invalid", None
    try:
        payload = _DECODER.decode(token, pair.private_key, algorithms=["HS256"], options=_OPTIONS)
    except jwt.InvalidTokenError:
        return "invalid", None
    iat, exp = payload.get("iat"), payload.get("exp")
    if type(iat) is not int or type(exp) is not int:
        return "invalid", None
    if exp - iat > MAX_CREDENTIAL_LIFETIME or exp <= iat or iat > now + LEEWAY_SECONDS:
        return "invalid", None
    fields = {k: v for k, v in payload.items() if k not in ("iat", "exp")}
    if not all(isinstance(v, str) for v in fields.values()):
        return "invalid", None
    if exp + LEEWAY_SECONDS <= now:
        return "expired", None
    return "valid", (pair.public_key, fields, iat, exp)


def with_ours(token: str, now: int = START) -> tuple[str, Any]:
    try:
        found = credentials.verify_v2(token, RING, now=now)
    except credentials.ExpiredToken:
        return "expired", None
    except credentials.InvalidToken:
        return "invalid", None
    return "valid", (found.pair.public_key, found.fields, found.iat, found.exp)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signed(header: bytes, payload: bytes, key: bytes = PAIR.private_key) -> str:
    signing_input = f"{b64(header)}.{b64(payload)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


texts = st.text(max_size=12)
# Mostly what a genuine token holds, so that each one thing wrong is tried often.
headers = st.fixed_dictionaries(
    {
        "alg": st.sampled_from(["HS256"] * 4 + ["HS512", "none", "RS256", "hs256"]),
        "kid": st.sampled_from([PAIR.public_key] * 4 + [OTHER.public_key, "nope", 7, None]),
    },
    optional={
        "typ": st.sampled_from(["JWT", "jwt", "at+jwt"]),
        "nonce": texts,
        "cty": texts,
    },
)
payloads = st.fixed_dictionaries(
    {"fileName": texts},
    optional={
        "iat": st.one_of(st.integers(START - 4000, START + 100), st.floats(), texts, st.none()),
        "exp": st.one_of(st.integers(START - 100, START + 4000), st.floats(), texts),
        "folder": st.one_of(texts, st.integers(), st.lists(texts, max_size=2)),
    },
)


@st.composite
def tokens(draw: st.DrawFn) -> str:
    """A token made and signed as anybody could, then possibly broken one way or another."""
    header = json.dumps(draw(headers)).encode()
    payload = draw(
        st.one_of(payloads.map(lambda p: json.dumps(p).encode()), st.binary(max_size=20))
    )
    if draw(st.booleans()):
        payload = json.dumps({"fileName": "a.png", "iat": START - 10, "exp": START + 600}).encode()
    key = draw(st.sampled_from([PAIR.private_key] * 4 + [OTHER.private_key, b"x" * 32]))
    token = signed(header, payload, key)
    how = draw(st.sampled_from(["as is"] * 4 + ["char", "last char", "pad", "segments", "space"]))
    if how == "char":
        at = draw(st.integers(0, len(token) - 1))
        token = token[:at] + draw(st.sampled_from("Aa0-_.=+/ ")) + token[at + 1 :]
    elif how == "last char":
        segments = token.split(".")
        which = draw(st.integers(0, 2))
        segments[which] = segments[which][:-1] + draw(st.sampled_from("AEIQgw-_"))
        token = ".".join(segments)
    elif how == "pad":
        token += "=" * draw(st.integers(1, 2))
    elif how == "segments":
        segments = token.split(".")
        shuffled = draw(st.permutations([*segments, segments[0]]))
        token = ".".join(shuffled[: draw(st.integers(1, 4))])
    elif how == "space":
        token = " " + token
    return token


@settings(max_examples=1500, deadline=None)
@given(tokens(), st.integers(START - 700, START + 700))
def test_the_same_verdict_as_pyjwt(token: str, now: int) -> None:
    assert with_ours(token, now) == with_pyjwt(token, now), token


def test_every_issued_token_is_valid_to_both() -> None:
    for fields in ({"fileName": "a.png"}, {"fileName": "ü €", "folder": "/x", "tags": "a,b"}):
        for _ in range(50):
            token = credentials.issue_v2(PAIR, fields, now=START, ttl=600)
            assert with_ours(token) == with_pyjwt(token)
            assert with_ours(token)[0] == "valid"


def test_a_signature_encoded_another_way_is_another_string_and_refused() -> None:
    """The unused low bits of the signature's last character change the string, not the
    bytes: the ledger burns the string, so such a twin must not verify (PyJWT agrees)."""
    token = credentials.issue_v2(PAIR, {"fileName": "a.png"}, now=START, ttl=600)
    twins = [token[:-1] + c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0-_"]
    accepted = [t for t in twins if with_ours(t)[0] == "valid"]
    assert accepted == [token] if token in twins else accepted == []
    assert all(with_pyjwt(t)[0] == with_ours(t)[0] for t in twins)


ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def test_a_segment_is_read_exactly_when_it_is_its_bytes_written_again() -> None:
    """Every length and every last character (and some outside the alphabet): a segment is
    read when it is the unpadded base64url of its bytes, and refused otherwise."""
    for length in range(1, 13):
        for last in ALPHABET + "+/=. ":
            segment = "Q" * (length - 1) + last
            try:
                canonical = base64.urlsafe_b64decode(segment + "=" * (-length % 4))
                expected = credentials._b64(canonical).decode() == segment
            except ValueError:  # binascii.Error: not base64 at all
                expected = False
            try:
                read = credentials._b64decode(segment)
            except credentials.InvalidToken:
                assert not expected, segment
            else:
                assert expected, segment
                assert read == canonical


def test_a_padded_token_is_refused() -> None:
    """``token=`` is the same token to PyJWT, and another string to the ledger, which burns
    strings: accepted, one credential would upload twice. Padding is refused."""
    token = credentials.issue_v2(PAIR, {"fileName": "a.png"}, now=START, ttl=600)
    assert with_ours(token)[0] == "valid"
    segments = token.split(".")
    assert len(segments[2]) % 4 == 3  # 32 bytes: 43 characters, and one "=" of padding
    padded = token + "="
    assert _DECODER.decode(padded, PAIR.private_key, algorithms=["HS256"], options=_OPTIONS)
    assert with_ours(padded) == ("invalid", None)


@pytest.mark.parametrize("segment", ["header", "payload"])
def test_json_nested_past_the_parser_is_a_malformed_token(segment: str) -> None:
    """A header read before any signature check (or a payload) of 40,000 nested arrays: the
    parser gives up with RecursionError, which is a malformed token, not a crash."""
    nested = b"[" * 40_000
    header = json.dumps({"alg": "HS256", "kid": PAIR.public_key}).encode()
    token = signed(nested, b"{}") if segment == "header" else signed(header, nested)
    assert with_ours(token) == ("invalid", None)


@pytest.mark.parametrize("extension", [{"crit": ["exp"]}, {"b64": False}, {"b64": True}])
def test_extensions_are_refused(extension: dict[str, Any]) -> None:
    """No JWS extension is understood, so a header naming one is refused outright."""
    header = json.dumps({"alg": "HS256", "kid": PAIR.public_key, **extension}).encode()
    payload = json.dumps({"fileName": "a.png", "iat": START, "exp": START + 60}).encode()
    assert with_ours(signed(header, payload)) == ("invalid", None)
