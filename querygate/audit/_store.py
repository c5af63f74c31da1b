"""Appending to the audit log: one committed, durable event per call, or no data.

The database assigns each event's place (seq, prev_hash, hash) under the head's row lock, in
``querygate.audit_append``: the writer sends only the content and its hash.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from querygate.audit import _arrays as arrays
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


def _dumps(value: object) -> bytes:
    """orjson for speed; the standard library for what orjson refuses (integers past 64 bits)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, allow_nan=False).encode()


def _columns(events: list[AuditEvent]) -> list[arrays.BinaryArray]:
    """The batch as one binary array per column, in event order; each content encoded once.

    The hashed documents (parameters, fields, subjects, context) go as their canonical text,
    which the ``json`` columns keep as given: the server then renders the hashed bytes."""
    contents = [event.content() for event in events]
    try:
        return [
            arrays.uuids([e.event_id for e in events]),
            arrays.timestamps([e.occurred_at for e in events]),
            arrays.texts([e.actor_id for e in events]),
            arrays.texts([e.actor_email for e in events]),
            arrays.jsonbs([_dumps(c["actor_roles"]) for c in contents]),
            arrays.texts([e.function_name for e in events]),
            arrays.jsons([encode(c["parameters"]) for c in contents]),
            arrays.texts([e.decision for e in events]),
            arrays.texts([e.reason for e in events]),
            arrays.texts([e.error_code for e in events]),
            arrays.int4s([e.rows_returned for e in events]),
            arrays.jsons([encode(c["fields"]) for c in contents]),
            arrays.jsons([encode(c["subjects"]) for c in contents]),
            arrays.texts([e.client_addr for e in events]),
            arrays.int8s([e.duration_us for e in events]),
            arrays.jsons([encode(c["context"]) for c in contents]),
            arrays.texts([e.policy_version for e in events]),
            arrays.byteas([hashlib.sha256(canonical(c)).digest() for c in contents]),
        ]
    except (TypeError, ValueError, struct.error) as exc:  # a float, a lone surrogate: fail closed
        raise psycopg.DataError(f"an audit event could not be encoded ({type(exc).__name__})") \
            from None


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
