"""API keys for services and back ends: ``Authorization: Bearer uak_...``.

Only SHA-256 hashes are configured; a presented key is hashed and compared with every configured
hash in constant time. Keys are 256-bit random strings, so a plain hash is as strong as a slow
one here (there is no password to guess). ``upload-auth new-api-key`` makes a key and its hash.
"""

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Iterator
from typing import Final
from urllib.parse import unquote

from app.core import errors
from app.core.settings import ApiKeyConfig
from app.credential_service.callers.base import Caller, RequestInfo, bearer_token, profile_set

PREFIX: Final = "uak_"
HASH_PREFIX: Final = "sha256:"


def new_api_key() -> str:
    """A fresh API key: the prefix and 256 random bits."""
    return PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """The form an API key is configured in."""
    return HASH_PREFIX + hashlib.sha256(key.encode()).hexdigest()


class ApiKeyAuthenticator:
    name = "api_key"

    def __init__(self, keys: Iterable[ApiKeyConfig]) -> None:
        #: Each key's hash and the caller it stands for, made once (not per request).
        self.callers = tuple(
            (
                bytes.fromhex(key.hash.removeprefix(HASH_PREFIX)),
                Caller(
                    key.name,
                    self.name,
                    key.namespace,
                    profile_set(key.profiles),
                    reads_all_receipts=key.read_all_receipts,
                ),
            )
            for key in keys
        )

    async def authenticate(self, request: RequestInfo) -> Caller | None:
        token = bearer_token(request.headers)
        if token is None:
            return None
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for expected, caller in self.callers:  # every entry: the time says nothing of which
            if hmac.compare_digest(expected, digest):
                found = caller
        if found is not None:
            return found
        if token.startswith(PREFIX):  # one of ours, but not a valid one: never passed on
            raise errors.Unauthenticated()
        return None


def carries_api_key(value: str) -> bool:
    """Whether a header value holds one of our API keys in any spelling: any scheme or none, any
    case, quoted, in a list, percent-encoded, or base64 (standard or URL-safe, padded or not,
    whole or as Basic's user name or password). Such a header is never passed on to anyone.

    Decided by what the value *is*, not by how it is laid out: the ``uak_`` prefix anywhere in
    the value, in its percent-decoding, or in the decoding of any base64-looking run in either.
    A false positive (a random base64 run decoding to ``uak_``) costs a 401 about once in 10**8
    tokens; a false negative would hand a back end's key to the app."""
    return any(PREFIX in text.lower() for text in _spellings(value))


#: A run that may be base64 or base64url (at least one 4-character group).
_BASE64_RUN: Final = re.compile(r"[A-Za-z0-9+/_-]{4,}={0,2}")


def _spellings(value: str) -> Iterator[str]:
    """The value, its percent-decoding, and every base64-looking run of either, decoded."""
    plain = (value, unquote(value))
    yield from plain
    for text in plain:
        for run in _BASE64_RUN.findall(text):
            body = run.rstrip("=")
            padded = body + "=" * (-len(body) % 4)
            for altchars in (b"+/", b"-_"):
                try:
                    decoded = base64.b64decode(padded, altchars=altchars, validate=True)
                except ValueError:
                    continue
                yield decoded.decode("latin-1")
