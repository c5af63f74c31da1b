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


async def test_an_agent_token_follows_the_person_it_acts_for(store: Store) -> None:
    async with await connect(store.gateway_url) as conn:
        person = await identity.add_user(conn, "p@example.com", ["support"])
        await identity.add_user(conn, "bot@agents.example.com", ["support", "billing"],
                                kind="service")
        token, _ = await identity.issue_token(conn, "bot@agents.example.com",
                                              on_behalf_of="p@example.com")
        who = await identity.authenticate(conn, token)
        assert who.roles == ("support",) and who.on_behalf_of == person.id
        assert who.context == {"on_behalf_of": person.id, "on_behalf_of_email": "p@example.com"}
        await identity.revoke_user(conn, "p@example.com")
        with pytest.raises(NotAuthenticated, match="acts for is no longer active"):
            await identity.authenticate(conn, token)


async def test_sign_in_links_provisions_and_ends_sessions(store: Store) -> None:
    from querygate.identity import OidcSettings
    from querygate.identity._signin import identity_for_claims

    settings = OidcSettings(issuer="https://idp.example.com", audience="querygate",
                            role_map={"eng-billing": "billing"})
    now = int(dt.datetime.now(dt.UTC).timestamp())
    claims = {"sub": "s-1", "email": "Q@example.com", "email_verified": True, "iat": now - 5,
              "groups": ["eng-billing", "unmapped"]}
    async with await connect(store.gateway_url) as conn:
        who = await identity_for_claims(conn, claims, settings)
        assert (who.email, who.roles) == ("q@example.com", ("billing",))
        again = await identity_for_claims(conn, {**claims, "groups": []}, settings)
        assert again.user_id == who.user_id and again.roles == ()  # roles follow the token
        await identity.add_user(conn, "r@example.com", ["support"])
        with pytest.raises(NotAuthenticated, match="cannot be linked"):
            await identity_for_claims(conn, {**claims, "sub": "s-2", "email": "r@example.com",
                                             "email_verified": False}, settings)
        await identity.add_user(conn, "svc@example.com", ["admin"], kind="service")
        with pytest.raises(NotAuthenticated, match="cannot be linked"):  # no person becomes a service
            await identity_for_claims(conn, {**claims, "sub": "s-3", "email": "svc@example.com"},
                                      settings)
        await identity.revoke_user(conn, "q@example.com", status="suspended", by="test")
        await conn.execute("UPDATE querygate.users SET status = 'active' WHERE id = %s",
                           (who.user_id,))
        with pytest.raises(NotAuthenticated, match="ended by an administrator"):
            await identity_for_claims(conn, claims, settings)  # issued before the sessions ended
        fresh = await identity_for_claims(conn, {**claims, "iat": now + 2}, settings)
        assert fresh.user_id == who.user_id


async def test_writing_on_a_read_only_connection(store: Store) -> None:
    async with await psycopg.AsyncConnection.connect(store.gateway_url) as conn:
        await conn.set_read_only(True)
        await conn.execute("SELECT 1")
        async with identity.writing(conn):
            await identity.add_user(conn, "w@example.com", ["support"])
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            await identity.add_user(conn, "x@example.com", ["support"])
        await conn.rollback()
        users = [u.email for u in await identity.list_users(conn)]
    assert users == ["w@example.com"]
