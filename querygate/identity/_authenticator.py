"""The authenticator the gateway asks, on every call, who a bearer token stands for.

``qg_…`` tokens are querygate's own (looked up by hash); anything else is a JWT
from the configured OIDC issuer, verified and then checked against the
directory. With no ``identity.oidc`` section, only querygate's own tokens work.
"""

from __future__ import annotations

from typing import Any, Protocol

import psycopg

from querygate.errors import NotAuthenticated
from querygate.identity._model import Identity
from querygate.identity._oidc import OidcVerifier
from querygate.identity._settings import OidcSettings, identity_settings
from querygate.identity._signin import identity_for_claims
from querygate.identity._store import authenticate
from querygate.identity._tokens import PREFIX
from querygate.project import Project


class Authenticator(Protocol):
    async def authenticate(self, conn: psycopg.AsyncConnection[Any], token: str | None) -> Identity:
        """The caller's identity, checked now; NotAuthenticated when there is none."""
        ...


class TokenAuthenticator:
    """querygate's own API tokens, looked up by hash in the identity directory."""

    async def authenticate(self, conn: psycopg.AsyncConnection[Any], token: str | None) -> Identity:
        return await authenticate(conn, token)


class OidcAuthenticator:
    """querygate's own tokens, and bearer JWTs from one OIDC issuer."""

    def __init__(self, settings: OidcSettings, verifier: OidcVerifier | None = None) -> None:
        self.settings = settings
        self.verifier = verifier or OidcVerifier(settings)

    async def authenticate(self, conn: psycopg.AsyncConnection[Any], token: str | None) -> Identity:
        if not token or token.startswith(PREFIX):
            return await authenticate(conn, token)
        if not token.startswith("eyJ"):
            raise NotAuthenticated("malformed token; send Authorization: Bearer qg_… or a JWT "
                                   "from the configured identity provider")
        claims = await self.verifier.verify(token)
        return await identity_for_claims(conn, claims, self.settings)


def build_authenticator(project: object) -> Authenticator:
    """The authenticator for a project's ``identity:`` settings."""
    if not isinstance(project, Project):
        return TokenAuthenticator()
    settings = identity_settings(project)
    return OidcAuthenticator(settings.oidc) if settings.oidc else TokenAuthenticator()
