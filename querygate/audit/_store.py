"""Appending to the audit log: one committed, durable event per call, or no data.

The database assigns each event's place (seq, prev_hash, hash) under the head's row lock, in
``querygate.audit_append``: the writer sends only the content and its hash.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Json, Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from querygate.audit._event import AuditEvent, canonical, encode
from querygate.errors import AuditUnavailable


@dataclass(frozen=True)
class Receipt:
    """Proof of recording: the event's place in the chain."""

    event_id: str
    seq: int
    hash: str


_APPEND = """
SELECT seq, hash FROM querygate.audit_append(
    %b::uuid[], %b::timestamptz[], %b::text[], %b::text[], %b::jsonb[], %b::text[], %b::json[],
    %b::text[], %b::text[], %b::text[], %b::integer[], %b::json[], %b::json[], %b::text[],
    %b::bigint[], %b::json[], %b::text[], %b::bytea[])
"""


def _json(value: object) -> Jsonb:
    return Jsonb(value, dumps=_dumps)


def _document(value: object) -> Json:
    """A hashed document (parameters, fields, subjects, context) in its canonical text, which
    the ``json`` column keeps as given: the server then renders the hashed bytes themselves."""
    return Json(value, dumps=lambda v: encode(v).decode())


def _dumps(value: object) -> str:
    """orjson for speed; the standard library for what orjson refuses (integers past 64 bits)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _columns(events: list[AuditEvent]) -> list[list[Any]]:
    """The batch as one array per column, in event order; each content encoded once."""
    columns: list[list[Any]] = [[] for _ in range(18)]
    for event in events:
        content = event.content()
        values = (
            event.event_id, event.occurred_at, event.actor_id, event.actor_email,
            _json(content["actor_roles"]), event.function_name, _document(content["parameters"]),
            event.decision, event.reason, event.error_code, event.rows_returned,
            _document(content["fields"]), _document(content["subjects"]), event.client_addr,
            event.duration_us, _document(content["context"]), event.policy_version,
            hashlib.sha256(canonical(content)).digest(),
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    return columns


async def append_batch(conn: psycopg.AsyncConnection[Any],
                       events: list[AuditEvent]) -> list[Receipt]:
    """One statement, one transaction: the events placed in order, each with its receipt."""
    cur = await conn.execute(_APPEND, _columns(events))  # %b: binary arrays, no escaping
    rows = await cur.fetchall()
    return [Receipt(str(e.event_id), int(r[0]), bytes(r[1]).hex())
            for e, r in zip(events, rows, strict=True)]


async def configure_audit_connection(conn: psycopg.AsyncConnection[Any], *, timeout_ms: int) -> None:
    """Durable commits and a bound on how long an append may wait."""
    await conn.set_autocommit(True)
    await conn.execute(f"SET synchronous_commit = on; SET statement_timeout = {int(timeout_ms)}; "
                       f"SET lock_timeout = {int(timeout_ms)}")


async def append(pool: AsyncConnectionPool[Any], event: AuditEvent, *, timeout_s: float) -> Receipt:
    """Write ``event`` and wait for its commit; AuditUnavailable when that cannot be done."""
    try:
        async with pool.connection(timeout=timeout_s) as conn:
            return (await append_batch(conn, [event]))[0]
    except (PoolTimeout, psycopg.Error) as exc:
        raise AuditUnavailable(
            "the audit store could not record this call, so no data was returned "
            f"({type(exc).__name__})"
        ) from exc
