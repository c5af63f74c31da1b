"""Answers from the log: search by person, function and time; every access to one subject."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from querygate.audit._read import COLUMNS, StoredEvent


@dataclass(frozen=True)
class Query:
    user: str | None = None  # email or actor id
    function: str | None = None
    subject: tuple[str, str] | None = None  # (type, id)
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    decision: str | None = None
    limit: int = 100


async def search(conn: psycopg.AsyncConnection[Any], query: Query) -> list[StoredEvent]:
    """Events matching every given filter, newest first."""
    where: list[sql.Composable] = []
    args: list[Any] = []
    if query.user:
        where.append(sql.SQL("(actor_email = %s OR actor_id = %s)"))
        args += [query.user.lower(), query.user]
    if query.function:
        where.append(sql.SQL("function_name = %s"))
        args.append(query.function)
    if query.subject:
        where.append(sql.SQL("subjects @> %s"))
        args.append(Jsonb([{"type": query.subject[0], "id": query.subject[1]}]))
    if query.since:
        where.append(sql.SQL("occurred_at >= %s"))
        args.append(query.since)
    if query.until:
        where.append(sql.SQL("occurred_at < %s"))
        args.append(query.until)
    if query.decision:
        where.append(sql.SQL("decision = %s"))
        args.append(query.decision)
    statement = sql.SQL("SELECT {} FROM querygate.audit_events {} ORDER BY seq DESC LIMIT %s").format(
        sql.SQL(COLUMNS),
        sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""),
    )
    cur = await conn.execute(statement, [*args, query.limit])
    return [StoredEvent(row) for row in await cur.fetchall()]


async def export(
    conn: psycopg.AsyncConnection[Any], *, batch: int = 5000
) -> AsyncIterator[dict[str, Any]]:
    """Every event in sequence order (an async iterator of the JSONL form)."""
    async with conn.transaction(), conn.cursor(name="querygate_export") as cur:
        cur.itersize = batch
        await cur.execute(f"SELECT {COLUMNS} FROM querygate.audit_events ORDER BY seq")
        async for row in cur:
            yield StoredEvent(row).export()
