"""Who sent an upload: the private key (Basic auth), a v1 signature, or a v2 JWT.

A credential is burned as soon as its signature proves it genuine, before anything else can fail,
so a failed upload still uses it up (ImageKit's rule, ``spec/imagekit-upload-protocol.md`` §8).
"""

import base64
import binascii
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from app.core import credentials
from app.core.clock import LEEWAY_SECONDS, MAX_CREDENTIAL_LIFETIME, now_ms, unix_now
from app.core.keys import KeyPair, KeyRing
from app.core.ledger import Burn, LedgerUnavailable, credential_key
from app.core.ledger.records import Issued, UploadGrant
from app.upload_api import messages
from app.upload_api.context import UploadContext


@dataclass(frozen=True, slots=True)
class Authenticated:
    """How an upload was authenticated: who the credential was issued to, its ledger key (None
    for the private key itself), and a v1 credential's grant."""

    issued: Issued
    key: str | None = None
    grant: UploadGrant | None = None


PRIVATE_KEY: Final = Authenticated(Issued("private-key"))


def basic_auth_key(header: str | None) -> str | None:
    """The user name of an HTTP Basic ``Authorization`` header (the private key), else None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise messages.cannot_authenticate() from None
    return decoded.partition(":")[0]  # the password is ignored (new SDKs send "do_not_set")


#: The form fields of a v1 signature; a request with none of them brings no credential.
V1_CREDENTIAL: Final = ("signature", "token", "expire")


async def _burn(
    ctx: UploadContext, key: str, until: int, token: str, *, bound_only: bool = False
) -> Burn:
    """Use the credential up. Used before: refused as such, unless ``bound_only`` and it has
    no grant, which is refused as never issued however often it comes."""
    moment = now_ms(ctx.clock)
    try:
        burn = await ctx.ledger.burn(key, until - moment // 1000 + LEEWAY_SECONDS, now_ms=moment)
    except LedgerUnavailable:
        raise messages.store_unavailable() from None
    if not burn.fresh:
        if bound_only and burn.grant is None:
            raise messages.unbound_v1()
        raise messages.token_used(token)
    return burn


def _not_before_epoch(burn: Burn, issued_ms: int, token: str) -> None:
    """A credential issued before the ledger's epoch may have been used before the ledger
    forgot: it is refused, and the client fetches a new one."""
    if issued_ms < burn.epoch_ms:
        raise messages.token_forgotten(token)


def _end_of_second(seconds: int) -> int:
    """The latest moment, in milliseconds, of a time known to the second."""
    return seconds * 1000 + 999


def _by_private_key(keys: KeyRing, private_key: str) -> KeyPair:
    pair = keys.by_private_key(private_key.encode())
    if pair is None:
        raise messages.cannot_authenticate()
    return pair


async def authenticate_v1(
    ctx: UploadContext, basic: str | None, fields: Mapping[str, str]
) -> Authenticated:
    """Basic auth with the private key (no grant: the account owner, unrestricted), or
    publicKey + signature + expire + token (the grant recorded for the token, or none where
    unbound v1 credentials are accepted)."""
    if basic is not None and "signature" in fields:
        raise messages.both_auth_v1()
    if basic is not None:
        _by_private_key(ctx.keys.ring, basic)
        return PRIVATE_KEY
    if not any(name in fields for name in V1_CREDENTIAL):
        raise messages.no_auth()
    pair, token, expire = _v1_signed(ctx.keys.ring, fields)
    now = unix_now(ctx.clock)
    if not now - LEEWAY_SECONDS < expire:  # it can never pass again: nothing to remember
        raise messages.invalid_expire()
    key = credential_key("v1", pair.public_key, token)
    burn = await _burn(ctx, key, expire, token, bound_only=not ctx.accept_unbound_v1)
    grant = _grant_of(burn)
    issued_ms = grant.issued_ms if grant else _end_of_second(expire - ctx.credential_ttl)
    _not_before_epoch(burn, issued_ms, token)
    if expire > now + MAX_CREDENTIAL_LIFETIME + LEEWAY_SECONDS:
        raise messages.invalid_expire()
    if grant is None and not ctx.accept_unbound_v1:
        raise messages.unbound_v1()
    if grant is None:
        return Authenticated(Issued("v1"), key)
    issued = Issued("v1", grant.caller, grant.profile, grant.request_id, grant.issued_ms or None)
    return Authenticated(issued, key, grant)


def _v1_signed(ring: KeyRing, fields: Mapping[str, str]) -> tuple[KeyPair, str, int]:
    """The key pair, token and expiry of a v1 signature that the pair's private key made, in
    ImageKit's order of refusals; a missing part of it is a 400 that names it, as a missing
    token always was (a request with no part at all is the 401 above)."""
    for name in ("publicKey", "signature", "token"):
        if not fields.get(name):
            raise messages.missing_parameter(name)
    pair = ring.get(fields["publicKey"])
    if pair is None:
        raise messages.cannot_authenticate()
    raw_expire = fields.get("expire", "")
    if not (raw_expire.isascii() and raw_expire.isdigit()) or len(raw_expire) > 12:
        raise messages.invalid_expire()
    expire, token = int(raw_expire), fields["token"]
    expected = credentials.v1_signature(pair, token, expire)
    if not hmac.compare_digest(expected.encode(), fields["signature"].encode()):
        raise messages.invalid_signature()
    return pair, token, expire


def _grant_of(burn: Burn) -> UploadGrant | None:
    """The grant the ledger returned with the burn; a record that is not one is the ledger's
    trouble (503), never an unbound credential."""
    if burn.grant is None:
        return None
    try:
        return UploadGrant.from_json(burn.grant)
    except ValueError:
        raise messages.store_unavailable() from None


async def authenticate_v2(
    ctx: UploadContext, basic: str | None, fields: Mapping[str, str]
) -> Authenticated:
    """Basic auth with the private key, or a JWT whose payload equals the form fields."""
    token = fields.get("token")
    if basic is not None and token is not None:
        raise messages.both_auth_v2()
    if basic is not None:
        _by_private_key(ctx.keys.ring, basic)
        return PRIVATE_KEY
    if not token:
        raise messages.missing_parameter("token")
    now = unix_now(ctx.clock)
    try:
        verified = credentials.verify_v2(token, ctx.keys.ring, now=now)
    except credentials.ExpiredToken:
        raise messages.expired_token() from None
    except credentials.InvalidToken:
        raise messages.invalid_token() from None
    key = credential_key("v2", token)
    burn = await _burn(ctx, key, verified.exp, token)
    _not_before_epoch(burn, _end_of_second(verified.iat), token)
    sent = {name: value for name, value in fields.items() if name != "token"}
    if sent != verified.fields:
        raise messages.invalid_payload()
    return Authenticated(Issued.from_record("v2", burn.grant), key)
