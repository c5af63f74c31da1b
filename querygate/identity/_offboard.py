"""Offboarding in one step: status, tokens, sessions, grants, running queries, and a report.

Used by ``querygate users offboard`` and by SCIM deactivation alike. Running
queries are found in ``pg_stat_activity`` by the comment the gateway puts before
each call's SQL: ``/* querygate:<user id> */`` (an agent's: ``querygate:<agent
id>/<person id>``), see ``query_label``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

import psycopg

from querygate.identity._access import revoke_grants
from querygate.identity._db import writing
from querygate.identity._model import Identity
from querygate.identity._store import User, revoke_user

REPORT_DAYS = 14


def query_label(who: Identity) -> str:
    """The label a call's SQL carries as a leading comment while it runs."""
    label = f"querygate:{who.user_id}"
    return f"{label}/{who.on_behalf_of}" if who.on_behalf_of else label


@dataclass(frozen=True)
class Offboarding:
    user: User
    status: str
    by: str
    tokens_revoked: int
    grants_revoked: int
    queries_cancelled: int


async def offboard(conn: psycopg.AsyncConnection[Any], email: str, *, by: str,
                   status: str = "offboarded") -> Offboarding:
    """Revoke a person everywhere at once, then cancel what they are running now."""
    async with writing(conn):
        user, tokens = await revoke_user(conn, email, status=status, by=by)
        grants = await revoke_grants(conn, user.id, by)
    cancelled = await cancel_queries(conn, user.id)
    return Offboarding(user, status, by, tokens, grants, cancelled)


async def cancel_queries(conn: psycopg.AsyncConnection[Any], user_id: str) -> int:
    """Cancel every running call of a person, and of agents acting for them."""
    pattern = rf"^/\* querygate:([A-Za-z0-9_.-]+/)?{re.escape(user_id)} \*/"
    cur = await conn.execute(
        "SELECT count(*) FILTER (WHERE pg_cancel_backend(pid)) FROM pg_stat_activity "
        "WHERE pid <> pg_backend_pid() AND datname = current_database() "
        "AND state = 'active' AND query ~ %s", (pattern,))
    row = await cur.fetchone()
    if not conn.autocommit:
        await conn.commit()
    return int(row[0]) if row else 0


@dataclass
class FunctionUse:
    calls: int = 0
    allowed: int = 0
    subjects: set[tuple[str, str]] = field(default_factory=set)
    clear: set[str] = field(default_factory=set)  # columns returned in clear
    protected: set[str] = field(default_factory=set)  # "column=decision", masked or omitted
    last: dt.datetime | None = None


@dataclass(frozen=True)
class AccessReport:
    """What one person (and agents acting for them) accessed in the last days."""

    user_id: str
    days: int
    functions: dict[str, FunctionUse]

    @property
    def calls(self) -> int:
        return sum(f.calls for f in self.functions.values())

    @property
    def subjects(self) -> set[tuple[str, str]]:
        return {s for f in self.functions.values() for s in f.subjects}

    def to_json(self) -> dict[str, object]:
        return {"user_id": self.user_id, "days": self.days, "calls": self.calls,
                "subjects": len(self.subjects), "functions": {
                    name: {"calls": u.calls, "allowed": u.allowed, "subjects": len(u.subjects),
                           "clear": sorted(u.clear), "protected": sorted(u.protected),
                           "last": u.last.isoformat() if u.last else None}
                    for name, u in self.functions.items()}}


_RECENT = """
SELECT occurred_at, function_name, decision, subjects, fields
FROM querygate.audit_events
WHERE occurred_at > now() - make_interval(days => %s)
  AND (actor_id = %s OR context->>'on_behalf_of' = %s)
  AND function_name NOT LIKE 'querygate.%%'
ORDER BY seq
"""


async def access_report(conn: psycopg.AsyncConnection[Any], user_id: str,
                        days: int = REPORT_DAYS) -> AccessReport:
    """Calls, data subjects and fields not returned in clear, per function, from the audit log."""
    uses: dict[str, FunctionUse] = {}
    async with conn.cursor() as cur:
        await cur.execute(_RECENT, (days, user_id, user_id))
        async for occurred_at, function, decision, subjects, fields in cur:
            use = uses.setdefault(function, FunctionUse())
            use.calls += 1
            use.last = occurred_at
            if decision == "allowed":
                use.allowed += 1
                use.subjects.update((s["type"], s["id"]) for s in subjects)
                use.clear.update(k for k, v in fields.items() if v == "allow")
                use.protected.update(f"{k}={v}" for k, v in fields.items() if v != "allow")
    return AccessReport(user_id, days, uses)
