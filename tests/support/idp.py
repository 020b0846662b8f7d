"""The identity provider the caller tests trust."""

ISSUER = "https://idp.test/"


AUDIENCE = "upload-auth"
