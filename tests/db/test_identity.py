"""The identity directory: tokens as hashes only, revocation on the very next call."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from querygate import identity
from querygate.errors import NotAuthenticated
from tests.db.conftest import Store

pytestmark = pytest.mark.anyio


async def connect(url: str) -> psycopg.AsyncConnection[object]:
    return await psycopg.AsyncConnection.connect(url, autocommit=True)


async def test_issue_authenticate_revoke(store: Store) -> None:
    async with await connect(store.gateway_url) as conn:
        user = await identity.add_user(conn, "Alex@Example.com", ["support"])
        assert user.email == "alex@example.com" and user.id.startswith("usr_")
        token, token_id = await identity.issue_token(conn, "alex@example.com")
        assert token.startswith("qg_") and token_id.startswith("tok_")
        who = await identity.authenticate(conn, token)
        assert (who.email, who.roles, who.token_id) == ("alex@example.com", ("support",), token_id)
        await identity.revoke_user(conn, "alex@example.com")
        with pytest.raises(NotAuthenticated):
            await identity.authenticate(conn, token)
        with pytest.raises(identity.IdentityError, match="offboarded"):
            await identity.issue_token(conn, "alex@example.com")


async def test_tokens_are_stored_only_as_hashes(store: Store) -> None:
    async with await connect(store.gateway_url) as conn:
        await identity.add_user(conn, "a@example.com", ["support"])
        token, _ = await identity.issue_token(conn, "a@example.com")
    with psycopg.connect(store.admin_url) as conn:
        dump = conn.execute("SELECT row_to_json(t)::text FROM querygate.tokens t").fetchall()
    assert token not in str(dump)
    assert token[3:] not in str(dump)


async def test_expired_and_malformed_tokens_are_refused(store: Store) -> None:
    async with await connect(store.gateway_url) as conn:
        await identity.add_user(conn, "a@example.com", ["support"])
        token, _ = await identity.issue_token(conn, "a@example.com",
                                              ttl=dt.timedelta(seconds=-1))
        for bad in (token, None, "", "Bearer", "qg_" + "x" * 43, "x" * 5000):
            with pytest.raises(NotAuthenticated):
                await identity.authenticate(conn, bad)


async def test_duplicate_and_unknown_users(store: Store) -> None:
    async with await connect(store.gateway_url) as conn:
        await identity.add_user(conn, "a@example.com", ["support"])
        with pytest.raises(identity.IdentityError, match="already exists"):
            await identity.add_user(conn, "A@example.com", ["billing"])
        with pytest.raises(identity.IdentityError, match="no user"):
            await identity.revoke_user(conn, "nobody@example.com")
