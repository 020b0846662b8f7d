"""Key pairs and the key ring: which private key signs, and which verify.

An ImageKit account has up to five key pairs. The public key names a pair (it is the v1
``publicKey`` field and the v2 JWT ``kid``); the private key is the HMAC secret. One pair signs
new credentials; every pair in the ring verifies, so a pair can be retired only after the
credentials it signed have expired. Pure: no I/O, no framework imports.
"""

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

MAX_KEY_PAIRS: Final = 5
#: HS256 wants at least a 32-byte key (RFC 7518 §3.2; PyJWT warns below it). ImageKit private
#: keys are 36 characters ("private_" + 28).
MIN_PRIVATE_KEY_BYTES: Final = 32
#: The longest public key accepted anywhere: in settings, in a query and in a request body.
MAX_PUBLIC_KEY_LENGTH: Final = 128


@dataclass(frozen=True, slots=True)
class KeyPair:
    """One public/private key pair. The private key never appears in ``repr``."""

    public_key: str
    private_key: bytes = field(repr=False)
    #: HMAC (RFC 2104) with the key already absorbed, per digest: the inner and outer hash
    #: states after their key blocks. Keying costs more than the MAC of a credential, and
    #: ``hmac.HMAC.copy()`` wraps the same two C states in three Python calls.
    _keyed: dict[str, tuple["hashlib._Hash", "hashlib._Hash"]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        keyed = {}
        for name in ("sha1", "sha256"):
            block = hashlib.new(name).block_size
            key = self.private_key
            if len(key) > block:
                key = hashlib.new(name, key).digest()
            key = key.ljust(block, b"\0")
            inner = hashlib.new(name, key.translate(_IPAD))
            keyed[name] = (inner, hashlib.new(name, key.translate(_OPAD)))
        object.__setattr__(self, "_keyed", keyed)

    def __repr__(self) -> str:
        return f"KeyPair(public_key={self.public_key!r}, private_key=<redacted>)"

    def mac(self, digest: str, message: bytes) -> bytes:
        """HMAC-``digest`` (``sha1`` or ``sha256``) of ``message`` under the private key."""
        inner, outer = self._keyed[digest]
        inner = inner.copy()
        inner.update(message)
        outer = outer.copy()
        outer.update(inner.digest())
        return outer.digest()


_IPAD: Final = bytes(b ^ 0x36 for b in range(256))
_OPAD: Final = bytes(b ^ 0x5C for b in range(256))


class KeyRing:
    """The configured key pairs, with one of them chosen to sign."""

    __slots__ = ("_by_public", "signing")

    def __init__(self, pairs: Iterable[KeyPair], *, signing_public_key: str | None = None) -> None:
        ordered = list(pairs)
        if not ordered:
            raise ValueError("at least one key pair is required")
        if len(ordered) > MAX_KEY_PAIRS:
            raise ValueError(f"at most {MAX_KEY_PAIRS} key pairs are allowed")
        self._by_public = {p.public_key: p for p in ordered}
        if len(self._by_public) != len(ordered):
            raise ValueError("public keys must be unique")
        chosen = signing_public_key or ordered[0].public_key
        if chosen not in self._by_public:
            raise ValueError("the signing key is not one of the configured public keys")
        self.signing: KeyPair = self._by_public[chosen]

    def __iter__(self) -> Iterator[KeyPair]:
        return iter(self._by_public.values())

    def __len__(self) -> int:
        return len(self._by_public)

    def get(self, public_key: str) -> KeyPair | None:
        """The pair whose public key this is, or None."""
        return self._by_public.get(public_key)

    def by_private_key(self, private_key: bytes) -> KeyPair | None:
        """The pair whose private key this is, comparing every pair in constant time."""
        found = None
        for pair in self._by_public.values():
            if hmac.compare_digest(pair.private_key, private_key):
                found = pair
        return found


def generate_pair() -> KeyPair:
    """A throwaway key pair shaped like ImageKit's, for development mode only."""
    return KeyPair(
        public_key="public_dev_" + secrets.token_urlsafe(18),
        private_key=("private_dev_" + secrets.token_urlsafe(27)).encode(),
    )
