"""The authenticator the gateway asks, on every call, who a bearer token stands for."""

from __future__ import annotations

from typing import Any, Protocol

import psycopg

from querygate.identity._store import Identity, authenticate


class Authenticator(Protocol):
    async def authenticate(self, conn: psycopg.AsyncConnection[Any], token: str | None) -> Identity:
        """The caller's identity, checked now; NotAuthenticated when there is none."""
        ...


class TokenAuthenticator:
    """querygate's own API tokens, looked up by hash in the identity directory."""

    async def authenticate(self, conn: psycopg.AsyncConnection[Any], token: str | None) -> Identity:
        return await authenticate(conn, token)


def build_authenticator(project: object) -> Authenticator:
    """The authenticator for a project's ``identity:`` settings."""
    return TokenAuthenticator()
