"""The identity directory: users, services and tokens in the gateway's own schema."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import class_row

from querygate.errors import NotAuthenticated, QuerygateError
from querygate.identity._tokens import looks_like_token, new_id, new_token, token_hash


@dataclass(frozen=True)
class User:
    id: str
    email: str
    kind: str
    roles: list[str]
    status: str
    created_at: dt.datetime


@dataclass(frozen=True)
class Identity:
    """Who is calling: resolved from a token on every call, never cached."""

    user_id: str
    email: str
    kind: str
    roles: tuple[str, ...]
    token_id: str
    context: Mapping[str, str] = field(default_factory=dict)  # recorded in every audit event


class IdentityError(QuerygateError):
    status = 400
    code = "identity_error"


_USER_COLUMNS = "id, email, kind, roles, status, created_at"


async def add_user(conn: psycopg.AsyncConnection[Any], email: str, roles: Sequence[str],
                   *, kind: str = "person") -> User:
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise IdentityError(f"{email!r} is not an email address")
    async with conn.cursor(row_factory=class_row(User)) as cur:
        await cur.execute(
            f"INSERT INTO querygate.users (id, email, kind, roles) VALUES (%s, %s, %s, %s) "
            f"ON CONFLICT (email) DO NOTHING RETURNING {_USER_COLUMNS}",
            (new_id("usr" if kind == "person" else "svc"), email, kind, list(roles)),
        )
        user = await cur.fetchone()
    if user is None:
        raise IdentityError(f"{email} already exists; see `querygate users list`")
    return user


async def list_users(conn: psycopg.AsyncConnection[Any]) -> list[User]:
    async with conn.cursor(row_factory=class_row(User)) as cur:
        await cur.execute(f"SELECT {_USER_COLUMNS} FROM querygate.users ORDER BY email")
        return await cur.fetchall()


async def get_user(conn: psycopg.AsyncConnection[Any], email: str) -> User:
    async with conn.cursor(row_factory=class_row(User)) as cur:
        await cur.execute(f"SELECT {_USER_COLUMNS} FROM querygate.users WHERE email = %s",
                          (email.strip().lower(),))
        user = await cur.fetchone()
    if user is None:
        raise IdentityError(f"no user {email}; see `querygate users list`")
    return user


async def revoke_user(conn: psycopg.AsyncConnection[Any], email: str) -> tuple[User, int]:
    """Offboard a person: status offboarded and every token revoked, in one transaction."""
    user = await get_user(conn, email)
    await conn.execute(
        "UPDATE querygate.users SET status = 'offboarded', updated_at = now() WHERE id = %s",
        (user.id,),
    )
    cur = await conn.execute(
        "UPDATE querygate.tokens SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL",
        (user.id,),
    )
    return user, cur.rowcount


async def issue_token(conn: psycopg.AsyncConnection[Any], email: str,
                      *, ttl: dt.timedelta | None = None) -> tuple[str, str]:
    """A new token for an active user: (token, token id). Only its hash is stored."""
    user = await get_user(conn, email)
    if user.status != "active":
        raise IdentityError(f"{email} is {user.status}; tokens are issued to active users only")
    token, token_id = new_token(), new_id("tok")
    expires = dt.datetime.now(dt.UTC) + ttl if ttl else None
    await conn.execute(
        "INSERT INTO querygate.tokens (id, user_id, token_hash, expires_at) VALUES (%s, %s, %s, %s)",
        (token_id, user.id, token_hash(token), expires),
    )
    return token, token_id


_AUTHENTICATE = """
SELECT u.id, u.email, u.kind, u.roles, t.id
FROM querygate.tokens t JOIN querygate.users u ON u.id = t.user_id
WHERE t.token_hash = %s AND t.revoked_at IS NULL
  AND (t.expires_at IS NULL OR t.expires_at > now()) AND u.status = 'active'
"""


async def authenticate(conn: psycopg.AsyncConnection[Any], token: str | None) -> Identity:
    """The identity a bearer token stands for, checked against the directory now."""
    if not token or not looks_like_token(token):
        raise NotAuthenticated("missing or malformed token; send Authorization: Bearer qg_…")
    cur = await conn.execute(_AUTHENTICATE, (token_hash(token),))
    row = await cur.fetchone()
    if row is None:
        raise NotAuthenticated("unknown, expired or revoked token")
    return Identity(row[0], row[1], row[2], tuple(row[3]), row[4])
