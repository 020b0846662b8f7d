"""Signed delivery URLs in ImageKit's scheme: ``ik-t`` (expiry) and ``ik-s`` (signature).

Pure. ``ik-s`` is the lowercase hex HMAC-SHA1, under the private key, of the URL relative to
the URL endpoint (path and query, without the two parameters) followed by the expiry in Unix
seconds, or by ``9999999999`` for a URL that never expires (and then has no ``ik-t``). The
path is percent-encoded as the official SDKs encode it, so a URL built here is byte for byte
the one ``imagekitio``'s ``helper.build_url(signed=True, expires_in=N)`` and the Node SDK's
``url({signed: true, expireSeconds: N})`` build at the same second (tested against both).
"""

from collections.abc import Iterable
from enum import StrEnum
from hmac import compare_digest
from typing import Final
from urllib.parse import quote

from app.core.keys import KeyPair

#: The expiry signed into a URL that never expires (``ik-t`` is then left out).
NEVER: Final = 9999999999
#: What the SDKs leave unencoded in a path (RFC 3986's pchar, without '%').
_PATH_SAFE: Final = "/:@!$&'()*+,;=-._~"


class Verdict(StrEnum):
    """What a request's signature says."""

    VALID = "valid"
    UNSIGNED = "unsigned"
    INVALID = "invalid"
    EXPIRED = "expired"


def _signature(pair: KeyPair, relative: str, expiry: int) -> str:
    return pair.mac("sha1", f"{relative}{expiry}".encode()).hex()


def signed_url(pair: KeyPair, url_endpoint: str, path: str, expires_at: int | None) -> str:
    """The URL of ``path`` (a file path, ``/folder/name.ext``) under ``url_endpoint``, signed
    with ``pair``, valid until ``expires_at`` (Unix seconds; None: never)."""
    relative = quote(path.strip("/"), safe=_PATH_SAFE)
    url = url_endpoint.rstrip("/") + "/" + relative
    expiry = NEVER if expires_at is None else expires_at
    signature = _signature(pair, relative, expiry)
    if expires_at is None:
        return f"{url}?ik-s={signature}"
    return f"{url}?ik-t={expiry}&ik-s={signature}"


def verify(pairs: Iterable[KeyPair], relative: str, query: str, now: int) -> Verdict:
    """Whether a request for ``relative`` (its path below the URL endpoint, as sent, percent
    encoding and all) with the raw ``query`` carries a valid, unexpired signature of any of
    ``pairs``."""
    kept, expiry_text, signature = [], None, None
    for part in query.split("&") if query else ():
        if part.startswith("ik-s="):
            signature = part[5:]
        elif part.startswith("ik-t="):
            expiry_text = part[5:]
        else:
            kept.append(part)
    if signature is None:
        return Verdict.UNSIGNED
    if expiry_text is None:
        expiry = NEVER
    elif expiry_text.isascii() and expiry_text.isdigit() and len(expiry_text) <= 12:
        expiry = int(expiry_text)
    else:
        return Verdict.INVALID
    signed = relative + ("?" + "&".join(kept) if kept else "")
    valid = False
    for pair in pairs:  # every pair: the time says nothing of which one matched
        if compare_digest(_signature(pair, signed, expiry).encode(), signature.encode()):
            valid = True
    if not valid:
        return Verdict.INVALID
    return Verdict.VALID if now < expiry else Verdict.EXPIRED
