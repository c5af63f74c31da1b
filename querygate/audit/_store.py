"""Appending to the audit log: one committed, durable event per call, or no data.

The database assigns each event's place (seq, prev_hash, hash) under the head's row lock, in
the ``audit_chain`` trigger; whatever the writer sends for those three is overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from querygate.audit._event import AuditEvent
from querygate.errors import AuditUnavailable


@dataclass(frozen=True)
class Receipt:
    """Proof of recording: the event's place in the chain."""

    event_id: str
    seq: int
    hash: str


_INSERT = """
INSERT INTO querygate.audit_events (
    event_id, occurred_at, actor_id, actor_email, actor_roles, function_name, parameters,
    decision, reason, error_code, rows_returned, fields, subjects, client_addr, duration_us,
    context, policy_version, content_hash, prev_hash, hash, seq)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, '', '', 0)
RETURNING seq, hash
"""


def _row(event: AuditEvent) -> tuple[Any, ...]:
    content = event.content()
    return (
        event.event_id, event.occurred_at, event.actor_id, event.actor_email,
        list(event.actor_roles), event.function_name, Jsonb(content["parameters"]),
        event.decision, event.reason, event.error_code, event.rows_returned,
        Jsonb(content["fields"]), Jsonb(content["subjects"]), event.client_addr,
        event.duration_us, Jsonb(content["context"]), event.policy_version, event.content_hash(),
    )


async def configure_audit_connection(conn: psycopg.AsyncConnection[Any], *, timeout_ms: int) -> None:
    """Durable commits and a bound on how long an append may wait."""
    await conn.set_autocommit(True)
    await conn.execute(f"SET synchronous_commit = on; SET statement_timeout = {int(timeout_ms)}; "
                       f"SET lock_timeout = {int(timeout_ms)}")


async def append(pool: AsyncConnectionPool[Any], event: AuditEvent, *, timeout_s: float) -> Receipt:
    """Write ``event`` and wait for its commit; AuditUnavailable when that cannot be done."""
    try:
        async with pool.connection(timeout=timeout_s) as conn:
            cur = await conn.execute(_INSERT, _row(event))
            row = await cur.fetchone()
    except (PoolTimeout, psycopg.Error) as exc:
        raise AuditUnavailable(
            "the audit store could not record this call, so no data was returned "
            f"({type(exc).__name__})"
        ) from exc
    assert row is not None
    return Receipt(str(event.event_id), int(row[0]), bytes(row[1]).hex())
