"""From verified OIDC claims to an Identity, checked against the directory on every call.

The directory stays the one place a person is revoked: a signed, unexpired
token still fails when its person is suspended or offboarded, or when it was
issued before their sessions were ended (``sessions_valid_after``).

Roles: people managed by SCIM or added with ``querygate users add`` keep the
directory's roles; people who first appear by signing in get the token's
groups, mapped through ``role_map``, and the directory follows them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import psycopg

from querygate.errors import NotAuthenticated
from querygate.identity._db import writing
from querygate.identity._model import Grant, Identity, with_grants
from querygate.identity._settings import OidcSettings, role_list
from querygate.identity._store import GRANTS_SQL
from querygate.identity._tokens import new_id

_BY_SUBJECT = f"""
SELECT u.id, u.email, u.kind, u.roles, u.status, u.managed_by, u.sessions_valid_after,
       {GRANTS_SQL}
FROM querygate.users u WHERE u.oidc_subject = %s
"""


def mapped_roles(claims: Mapping[str, Any], settings: OidcSettings) -> tuple[str, ...]:
    """The querygate roles a token's groups claim maps to (unmapped groups grant nothing)."""
    groups = role_list(claims.get(settings.roles_claim))
    return tuple(sorted({settings.role_map[g] for g in groups if g in settings.role_map}))


async def identity_for_claims(conn: psycopg.AsyncConnection[Any], claims: Mapping[str, Any],
                              settings: OidcSettings) -> Identity:
    """The directory's person for a verified token: linked or provisioned on first sign-in."""
    subject = str(claims["sub"])
    row = await (await conn.execute(_BY_SUBJECT, (subject,))).fetchone()
    if row is None:
        await _link_or_provision(conn, claims, settings)
        row = await (await conn.execute(_BY_SUBJECT, (subject,))).fetchone()
        if row is None:
            raise NotAuthenticated("this sign-in could not be linked to a person in the directory")
    user_id, email, kind, roles, status, managed_by, valid_after, grants = row
    if status != "active":
        raise NotAuthenticated(f"{email} is {status}; ask an administrator")
    _check_session(claims, valid_after)
    if managed_by == "oidc":
        token_roles = mapped_roles(claims, settings)
        if token_roles != tuple(roles):
            async with writing(conn):
                await conn.execute("UPDATE querygate.users SET roles = %s, updated_at = now() "
                                   "WHERE id = %s", (list(token_roles), user_id))
        roles = token_roles
    who = Identity(user_id, email, kind, tuple(roles), f"oidc:{str(claims.get('jti', ''))[:64]}")
    return with_grants(who, who.roles, tuple(Grant.from_row(g) for g in grants))


def _check_session(claims: Mapping[str, Any], valid_after: dt.datetime | None) -> None:
    if valid_after is None:
        return
    issued = claims.get("iat")
    if not isinstance(issued, int | float) or dt.datetime.fromtimestamp(issued, dt.UTC) < valid_after:
        raise NotAuthenticated("this sign-in was ended by an administrator; sign in again")


async def _link_or_provision(conn: psycopg.AsyncConnection[Any], claims: Mapping[str, Any],
                             settings: OidcSettings) -> None:
    """First sign-in of a subject: link it to the person it names, or add them."""
    subject = str(claims["sub"])
    async with writing(conn):
        linked = await conn.execute(
            "UPDATE querygate.users SET oidc_subject = external_id, updated_at = now() "
            "WHERE external_id = %s AND oidc_subject IS NULL AND managed_by = 'scim' "
            "AND kind = 'person'", (subject,))
        if linked.rowcount:
            return  # SCIM's externalId is the provider's own user id (Okta): the same subject
        email = _email(claims, settings)
        found = await (await conn.execute(
            "SELECT id, oidc_subject, kind FROM querygate.users WHERE email = %s FOR UPDATE",
            (email,))).fetchone()
        if found is not None:
            if found[1] is not None or found[2] != "person" or claims.get("email_verified") is not True:
                raise NotAuthenticated(
                    f"{email} is already in the directory and this token cannot be linked to it "
                    "(another subject, or the email is not verified by the identity provider)")
            await conn.execute("UPDATE querygate.users SET oidc_subject = %s, updated_at = now() "
                               "WHERE id = %s", (subject, found[0]))
            return
        if not settings.auto_provision or claims.get("email_verified") is False:
            raise NotAuthenticated(f"{email} is not in the directory; ask an administrator to "
                                   "add them, or provision them through SCIM")
        name = claims.get("name")
        await conn.execute(
            "INSERT INTO querygate.users (id, email, kind, roles, managed_by, oidc_subject, "
            "display_name) VALUES (%s, %s, 'person', %s, 'oidc', %s, %s) ON CONFLICT DO NOTHING",
            (new_id("usr"), email, list(mapped_roles(claims, settings)), subject,
             name[:200] if isinstance(name, str) else None))


def _email(claims: Mapping[str, Any], settings: OidcSettings) -> str:
    email = claims.get(settings.email_claim)
    if not isinstance(email, str) or "@" not in email or len(email) > 254:
        raise NotAuthenticated(f"the token has no usable {settings.email_claim} claim; "
                               "add the email scope to the client")
    return email.strip().lower()
