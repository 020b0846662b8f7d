"""API keys for services and back ends: ``Authorization: Bearer uak_...``.

Only SHA-256 hashes are configured; a presented key is hashed and compared with every configured
hash in constant time. Keys are 256-bit random strings, so a plain hash is as strong as a slow
one here (there is no password to guess). ``upload-auth new-api-key`` makes a key and its hash.
"""

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from typing import Final

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
                Caller(key.name, self.name, profile_set(key.profiles)),
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


def carries_api_key(authorization: str) -> bool:
    """Whether an ``Authorization`` value holds one of our API keys, under any scheme (Bearer,
    Token, Basic's user name or password...): such a header is never passed on to anyone."""
    scheme, _, credentials = authorization.strip().partition(" ")
    credentials = credentials.strip()
    if credentials.startswith(PREFIX) or scheme.startswith(PREFIX):
        return True
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return False
        user, _, password = decoded.partition(":")
        return user.startswith(PREFIX) or password.startswith(PREFIX)
    return False
