"""The identity directory: users, services and tokens in the gateway's own schema."""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg.rows import class_row

from querygate.errors import IdentityError, NotAuthenticated
from querygate.identity._model import Grant, Identity, acting_for, with_grants
from querygate.identity._tokens import looks_like_token, new_id, new_token, token_hash


@dataclass(frozen=True)
class User:
    id: str
    email: str
    kind: str
    roles: list[str]
    status: str
    created_at: dt.datetime




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


async def reinstate(conn: psycopg.AsyncConnection[Any], user_id: str) -> bool:
    """A person the detector suspended is active again; anyone offboarded stays offboarded."""
    cur = await conn.execute(
        "UPDATE querygate.users SET status = 'active', updated_at = now() "
        "WHERE id = %s AND status = 'suspended'", (user_id,))
    return cur.rowcount > 0


async def revoke_user(conn: psycopg.AsyncConnection[Any], email: str,
                      *, status: str = "offboarded", by: str | None = None) -> tuple[User, int]:
    """Offboard (or suspend) a person: status changed, sign-in sessions ended, every token revoked."""
    user = await get_user(conn, email)
    await conn.execute(
        "UPDATE querygate.users SET status = %s, updated_at = now(), sessions_valid_after = now(), "
        "status_changed_by = %s, status_changed_at = now() WHERE id = %s",
        (status, by, user.id),
    )
    cur = await conn.execute(
        "UPDATE querygate.tokens SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL",
        (user.id,),
    )
    return user, cur.rowcount


async def issue_token(conn: psycopg.AsyncConnection[Any], email: str,
                      *, ttl: dt.timedelta | None = None,
                      on_behalf_of: str | None = None) -> tuple[str, str]:
    """A new token for an active user: (token, token id). Only its hash is stored.

    ``on_behalf_of`` (a person's email) makes it an agent's token: a service acting for
    that person, never with more than their roles, named in every audit event.
    """
    user = await get_user(conn, email)
    if user.status != "active":
        raise IdentityError(f"{email} is {user.status}; tokens are issued to active users only")
    person_id = None
    if on_behalf_of is not None:
        person = await get_user(conn, on_behalf_of)
        if user.kind != "service" or person.kind != "person" or person.status != "active":
            raise IdentityError("--on-behalf-of needs a service (the agent) acting for an active "
                                "person; add the agent with `querygate users add --service`")
        person_id = person.id
    token, token_id = new_token(), new_id("tok")
    expires = dt.datetime.now(dt.UTC) + ttl if ttl else None
    await conn.execute(
        "INSERT INTO querygate.tokens (id, user_id, token_hash, expires_at, on_behalf_of) "
        "VALUES (%s, %s, %s, %s, %s)",
        (token_id, user.id, token_hash(token), expires, person_id),
    )
    return token, token_id


_ACTIVE_GRANTS = """
(SELECT jsonb_agg(jsonb_build_object(
        'id', a.id, 'role', a.role, 'expires_at', a.expires_at, 'break_glass', a.break_glass,
        'functions', a.functions, 'params', a.params) ORDER BY a.id)
    FROM querygate.access_requests a
    WHERE a.user_id = u.id AND a.status = 'approved' AND u.kind = 'person'
      AND a.starts_at <= now() AND a.expires_at > now())
"""
GRANTS_SQL = f"coalesce({_ACTIVE_GRANTS}, '[]'::jsonb)"

_AUTHENTICATE = f"""
SELECT t.token_hash, u.id, u.email, u.kind, u.roles, t.id, {_ACTIVE_GRANTS},
       p.id, p.email, p.roles, p.status
FROM querygate.tokens t JOIN querygate.users u ON u.id = t.user_id
LEFT JOIN querygate.users p ON p.id = t.on_behalf_of
WHERE t.token_hash = ANY(%b) AND t.revoked_at IS NULL
  AND (t.expires_at IS NULL OR t.expires_at > now()) AND u.status = 'active'
"""
MALFORMED = "missing or malformed token; send Authorization: Bearer qg_…"
UNKNOWN = "unknown, expired or revoked token"


async def authenticate(conn: psycopg.AsyncConnection[Any], token: str | None) -> Identity:
    """The identity a bearer token stands for, checked against the directory now."""
    if not token or not looks_like_token(token):
        raise NotAuthenticated(MALFORMED)
    digest = token_hash(token)
    row = (await look_up(conn, [digest])).get(digest)
    if row is None:
        raise NotAuthenticated(UNKNOWN)
    return identity_from_row(row)


async def look_up(conn: psycopg.AsyncConnection[Any],
                  digests: Sequence[bytes]) -> dict[bytes, tuple[Any, ...]]:
    """The directory's rows for the tokens (by hash) that are valid now, in one statement."""
    cur = await conn.execute(_AUTHENTICATE, (_Digests(digests),))
    return {bytes(row[0]): row[1:] for row in await cur.fetchall()}


class _Digests:
    """Token hashes as a ``bytea[]`` in PostgreSQL's binary array layout, built directly: for
    the one or few hashes of a check, psycopg's list dumper (finding the element type, then a
    dumper per element) cost a quarter of the check's CPU on the gateway."""

    __slots__ = ("data",)
    _HEADER = struct.Struct("!iiIii")  # dimensions, has nulls, element oid, length, lower bound

    def __init__(self, digests: Sequence[bytes]) -> None:
        parts = [self._HEADER.pack(1, 0, 17, len(digests), 1)]
        for digest in digests:
            parts += [len(digest).to_bytes(4, "big"), digest]
        self.data = b"".join(parts)


class _DigestsDumper(Dumper):
    format = Format.BINARY
    oid = 1001  # bytea[]

    def dump(self, obj: _Digests) -> bytes:
        return obj.data


psycopg.adapters.register_dumper(_Digests, _DigestsDumper)


def identity_from_row(row: tuple[Any, ...]) -> Identity:
    """A valid token's row as the caller's identity; NotAuthenticated for an agent whose person
    is no longer active. The grants column is NULL, not an empty document, when none is in
    force (most calls): nothing to parse."""
    roles = tuple(row[3])
    if row[6] is not None:
        if row[9] != "active":
            raise NotAuthenticated("the person this agent acts for is no longer active")
        return acting_for(Identity(row[0], row[1], row[2], roles, row[4]), row[6], row[7],
                          tuple(row[8]))
    if row[5] is None:  # with_grants(who, roles, ()), built at once
        return Identity(row[0], row[1], row[2], tuple(dict.fromkeys(roles)), row[4],
                        base_roles=roles)
    who = Identity(row[0], row[1], row[2], roles, row[4])
    return with_grants(who, roles, tuple(Grant.from_row(g) for g in row[5]))
