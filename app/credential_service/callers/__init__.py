"""Who is asking for a credential: caller authentication.

Each configured method is an ``Authenticator``; the service asks them in order (API keys, then
end-user JWTs from an identity provider, then forward auth to the app's own session check) and
takes the first that recognises the request. No method configured and no development mode: the
service does not start.
"""

from app.credential_service.callers.base import (
    Authenticator,
    Caller,
    RequestInfo,
    authenticate,
    bearer_token,
)

__all__ = ["Authenticator", "Caller", "RequestInfo", "authenticate", "bearer_token"]
