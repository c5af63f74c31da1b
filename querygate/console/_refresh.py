"""An OIDC session's access token, refreshed with its refresh token before it lapses."""

from __future__ import annotations

import asyncio
import time

import httpx

from querygate import identity
from querygate.console._sessions import OidcTokens, Session
from querygate.errors import NotAuthenticated


async def refresh_if_due(session: Session) -> None:
    """An OIDC session's access token, refreshed a minute before it lapses (when it can be)."""
    tokens = session.oidc
    if tokens is None or tokens.expires_at - 60 > time.time() or not tokens.refresh_token:
        return
    base = identity.TokenSet(tokens.issuer, tokens.client_id, session.token, tokens.expires_at,
                          tokens.refresh_token)
    try:
        document = await asyncio.to_thread(identity.discover, tokens.issuer)
        fresh = await asyncio.to_thread(identity.oidc_token_request, document["token_endpoint"], {
            "grant_type": "refresh_token", "refresh_token": tokens.refresh_token,
            "client_id": tokens.client_id}, base, 10)
    except (NotAuthenticated, httpx.HTTPError, OSError, ValueError, KeyError):
        return  # the old token is tried as it is; refused, the session ends
    session.token = fresh.access_token
    session.oidc = OidcTokens(tokens.issuer, tokens.client_id, fresh.expires_at,
                              fresh.refresh_token)
