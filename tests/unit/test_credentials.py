"""v1 signatures and v2 JWTs, without HTTP: conformance with the official SDK and the spec."""

import base64
import hashlib
import hmac
import json
import re
import secrets
import uuid

import jwt
import pytest
from imagekitio import ImageKit

from app.core import credentials
from app.core.keys import KeyPair, KeyRing
from tests.support.apps import START, new_private_key, new_public_key
from tests.support.samples import v1_signature


def pair() -> KeyPair:
    return KeyPair(new_public_key(), new_private_key().encode())


def test_v1_matches_the_spec_test_vector() -> None:
    """The protocol spec's known vector reproduces byte for byte."""
    signing = KeyPair("public_key_test", b"private_key_test")
    assert credentials.v1_signature(signing, "your_token", 1582269249) == (
        "e71bcd6031016b060d349d212e23e85c791decdd"
    )


@pytest.mark.parametrize(
    ("token", "expire"),
    [
        ("your_token", 1582269249),
        (str(uuid.UUID(int=0x1234, version=4)), START + 1800),
        ("émoji-☃-token", 2_000_000_000),
        ("a" * 200, 1),
    ],
)
def test_v1_is_byte_identical_to_imagekitio(token: str, expire: int) -> None:
    """For the same key, token and expire, our signature equals imagekitio's helper's and
    ``hmac``'s (the key pair's precomputed HMAC states replace ``hmac.new``)."""
    key = new_private_key()
    official = ImageKit(private_key=key).helper.get_authentication_parameters(
        token=token, expire=expire
    )
    assert official["signature"] == v1_signature(key, token, expire)
    assert official == {
        "token": token,
        "expire": expire,
        "signature": credentials.v1_signature(KeyPair("public_x", key.encode()), token, expire),
    }


def test_issue_v1_signs_exactly_what_it_returns() -> None:
    """The returned token and expire are the ones signed; the token is a UUID v4."""
    p = pair()
    cred = credentials.issue_v1(p, now=START, ttl=1800)
    assert cred.expire == START + 1800
    assert uuid.UUID(cred.token).version == 4
    expected = hmac.new(p.private_key, f"{cred.token}{cred.expire}".encode(), hashlib.sha1)
    assert cred.signature == expected.hexdigest()
    assert cred.public_key == p.public_key


@pytest.mark.parametrize("key_length", [32, 36, 63, 64, 65, 128, 200])
@pytest.mark.parametrize("digest", ["sha1", "sha256"])
def test_pre_keyed_mac_is_hmac(key_length: int, digest: str) -> None:
    """The pair's pre-keyed MAC is RFC 2104 HMAC for keys shorter than, as long as and longer
    than the hash's block, and stays so when used again."""
    key = secrets.token_bytes(key_length)
    p = KeyPair(new_public_key(), key)
    for message in (b"", b"x", secrets.token_bytes(1000)):
        assert p.mac(digest, message) == hmac.new(key, message, digest).digest()
        assert p.mac(digest, message) == hmac.new(key, message, digest).digest()


def test_v1_tokens_are_canonical_random_uuid4s() -> None:
    """Every token reads back as the same canonical UUID, version 4, RFC 4122 variant, and the
    122 bits that are not fixed by those take both values across tokens: none stuck."""
    tokens = [credentials.uuid4() for _ in range(2000)]
    parsed = [uuid.UUID(t) for t in tokens]
    assert [str(u) for u in parsed] == tokens
    assert {(u.version, u.variant) for u in parsed} == {(4, uuid.RFC_4122)}
    assert len(set(tokens)) == len(tokens)
    always_one = uuid.UUID(int=0, version=4).int  # 2 of the 6 version and variant bits
    mask = (1 << 128) - 1
    seen_one = seen_zero = 0
    for u in parsed:
        seen_one |= u.int
        seen_zero |= ~u.int & mask
    assert (seen_one & ~always_one).bit_count() == 122  # every free bit was 1 at least once
    assert seen_zero.bit_count() == 128 - 2  # ... and every bit but those two was 0


FIELDS = {"fileName": "cat.png", "folder": "/", "checks": '"file.size" <= 10'}


def test_v2_decodes_with_pyjwt_and_the_private_key() -> None:
    """A v2 token is a plain HS256 JWT: kid = public key, the fields, integer iat/exp."""
    p = pair()
    token = credentials.issue_v2(p, FIELDS, now=START, ttl=600)
    header = jwt.get_unverified_header(token)
    nonce = header.pop("nonce")
    assert header == {"alg": "HS256", "typ": "JWT", "kid": p.public_key}
    assert isinstance(nonce, str)
    assert len(nonce) >= 16
    payload = jwt.decode(
        token,
        p.private_key,
        algorithms=["HS256"],
        options={"verify_exp": False, "verify_iat": False},
    )
    assert payload == {**FIELDS, "iat": START, "exp": START + 600}


@pytest.mark.parametrize("kid", ["public_abc", 'pub"lic\\_k\u00e9y', "public_\u2028\x01"])
def test_v2_header_is_compact_json_in_a_fixed_order(kid: str) -> None:
    """The header is built around its nonce; it must still be the JSON of the header object,
    whatever the public key holds that JSON escapes."""
    p = KeyPair(kid, new_private_key().encode())
    token = credentials.issue_v2(p, FIELDS, now=START, ttl=600)
    segment = token.split(".")[0]
    raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    header = json.loads(raw)
    assert re.fullmatch(r"[A-Za-z0-9_-]{16}", header["nonce"])
    assert list(header) == ["alg", "kid", "nonce", "typ"]
    assert header == {"alg": "HS256", "kid": kid, "nonce": header["nonce"], "typ": "JWT"}
    assert raw == json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    assert jwt.decode(
        token, p.private_key, algorithms=["HS256"], options={"verify_exp": False}
    ) == {**FIELDS, "iat": START, "exp": START + 600}


def test_two_tokens_for_the_same_file_in_the_same_second_differ() -> None:
    """Identical requests at the same instant still get distinct single-use tokens."""
    p = pair()
    tokens = {credentials.issue_v2(p, FIELDS, now=START, ttl=600) for _ in range(100)}
    assert len(tokens) == 100


@pytest.mark.parametrize("ttl", [0, -1, 3601])
def test_v2_refuses_a_lifetime_over_an_hour_or_none(ttl: int) -> None:
    """exp - iat must be within (0, 3600]."""
    with pytest.raises(ValueError, match="ttl"):
        credentials.issue_v2(pair(), FIELDS, now=START, ttl=ttl)


def test_v2_fields_cannot_smuggle_time_claims() -> None:
    """iat and exp come from the issuer, never from the fields."""
    with pytest.raises(ValueError, match="iat or exp"):
        credentials.issue_v2(pair(), {**FIELDS, "exp": "9999999999"}, now=START, ttl=60)


def test_verify_v2_round_trips() -> None:
    """A token we issue verifies against the ring and yields its fields and times."""
    p = pair()
    ring = KeyRing([pair(), p])
    token = credentials.issue_v2(p, FIELDS, now=START, ttl=600)
    verified = credentials.verify_v2(token, ring, now=START + 10)
    assert (verified.pair, verified.fields, verified.iat, verified.exp) == (
        p,
        FIELDS,
        START,
        START + 600,
    )
