"""Answers from the log: search by person, function and time; every access to one subject.

A subject lookup reads the record-level index (``audit_subjects``: subject, time, seq) and
joins each hit to its event by (seq, occurred_at), so it touches only the month partitions of
the period asked and only the rows of that subject. Results come newest first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from querygate.audit._read import COLUMNS, StoredEvent

_E_COLUMNS = ", ".join(f"e.{name.strip()}" for name in COLUMNS.split(","))
MAX_LIMIT = 100_000


@dataclass(frozen=True)
class Query:
    user: str | None = None  # email or actor id
    function: str | None = None
    subject: tuple[str, str] | None = None  # (type, id)
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    decision: str | None = None
    limit: int = 100


def _user_filter(user: str) -> tuple[sql.Composable, list[Any]]:
    """An email uses the (actor_email, occurred_at, seq) index; anything else may be either."""
    if "@" in user:
        return sql.SQL("e.actor_email = %s"), [user.lower()]
    return sql.SQL("(e.actor_id = %s OR e.actor_email = %s)"), [user, user.lower()]


def _filters(query: Query, time_column: str) -> tuple[list[sql.Composable], list[Any]]:
    where: list[sql.Composable] = []
    args: list[Any] = []
    if query.subject:
        where.append(sql.SQL("s.subject_type = %s AND s.subject_id = %s"))
        args += [query.subject[0], query.subject[1]]
    if query.user:
        clause, values = _user_filter(query.user)
        where.append(clause)
        args += values
    if query.function:
        where.append(sql.SQL("e.function_name = %s"))
        args.append(query.function)
    if query.decision:
        where.append(sql.SQL("e.decision = %s"))
        args.append(query.decision)
    columns = [time_column] if time_column.startswith("e.") else [time_column, "e.occurred_at"]
    for column in columns:  # on both sides of a subject join, so both prune to the period
        if query.since:
            where.append(sql.SQL("{} >= %s").format(sql.SQL(column)))
            args.append(query.since)
        if query.until:
            where.append(sql.SQL("{} < %s").format(sql.SQL(column)))
            args.append(query.until)
    return where, args


def statement(query: Query) -> tuple[sql.Composed, list[Any]]:
    """The SQL and arguments of a search (shown by the benchmarks' EXPLAIN)."""
    time_column = "s.occurred_at" if query.subject else "e.occurred_at"
    where, args = _filters(query, time_column)
    source = sql.SQL(
        "querygate.audit_subjects s JOIN querygate.audit_events e "
        "ON e.seq = s.seq AND e.occurred_at = s.occurred_at" if query.subject
        else "querygate.audit_events e")
    order = "s.occurred_at DESC, s.seq DESC" if query.subject else "e.occurred_at DESC, e.seq DESC"
    text = sql.SQL("SELECT {} FROM {} {} ORDER BY {} LIMIT %s").format(
        sql.SQL(_E_COLUMNS), source,
        sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""),
        sql.SQL(order))
    return text, [*args, max(1, min(query.limit, MAX_LIMIT))]


async def search(conn: psycopg.AsyncConnection[Any], query: Query) -> list[StoredEvent]:
    """Events matching every given filter, newest first."""
    text, args = statement(query)
    cur = await conn.execute(text, args)
    return [StoredEvent(row) for row in await cur.fetchall()]


async def export(
    conn: psycopg.AsyncConnection[Any], *, batch: int = 5000,
    since: dt.datetime | None = None, until: dt.datetime | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Events in sequence order, optionally those of one period (an async iterator of the
    JSONL form). A period's file verifies together with its neighbours: see verify_export."""
    where, args = _filters(Query(since=since, until=until), "e.occurred_at")
    text = sql.SQL("SELECT {} FROM querygate.audit_events e {} ORDER BY e.seq").format(
        sql.SQL(_E_COLUMNS), sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where
        else sql.SQL(""))
    async with conn.transaction(), conn.cursor(name="querygate_export") as cur:
        cur.itersize = batch
        await cur.execute(text, args)
        async for row in cur:
            yield StoredEvent(row).export()
