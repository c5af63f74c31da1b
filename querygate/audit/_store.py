"""Appending to the audit log: one committed, durable event per call, or no data.

The database assigns each event's place (seq, prev_hash, hash) under the head's row lock, in
``querygate.audit_append``: the writer sends only the content and its hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from querygate.audit._event import AuditEvent, canonical_parts
from querygate.errors import AuditUnavailable


@dataclass(frozen=True)
class Receipt:
    """Proof of recording: the event's place in the chain."""

    event_id: str
    seq: int
    hash: str


_APPEND = "SELECT seq, hash FROM querygate.audit_append(%s::json)"


def encode_event(event: AuditEvent) -> bytes:
    """One event as a JSON object of ``querygate.audit_batch_event``: its columns, the hashed
    documents as strings of their canonical text (which the server's ``json`` columns keep
    exactly), and their hash. An event that cannot be stored (a float, a lone surrogate, a NUL
    in a text column, an integer past 64 bits) raises psycopg.DataError here, before anything
    is sent, and fails alone."""
    try:
        content = event.content()
        texts = (event.actor_id, event.actor_email, event.function_name, event.decision,
                 event.reason, event.error_code, event.client_addr, event.policy_version,
                 *event.actor_roles)
        if any("\x00" in text for text in texts if text):
            raise ValueError("PostgreSQL text cannot hold NUL")
        hashed, documents = canonical_parts(content)
        return orjson.dumps({
            "event_id": content["event_id"], "occurred_at": content["occurred_at"],
            "actor_id": event.actor_id, "actor_email": event.actor_email,
            "actor_roles": content["actor_roles"], "function_name": event.function_name,
            "decision": event.decision, "reason": event.reason, "error_code": event.error_code,
            "rows_returned": event.rows_returned, "client_addr": event.client_addr,
            "duration_us": event.duration_us, "policy_version": event.policy_version,
            **{name: data.decode() for name, data in documents.items()},
            "content_hash": "\\x" + hashlib.sha256(hashed).hexdigest(),
        })
    except (TypeError, ValueError) as exc:  # orjson's errors are both
        raise psycopg.DataError(f"an audit event could not be encoded ({type(exc).__name__})") \
            from None


async def append_encoded(conn: psycopg.AsyncConnection[Any],
                         documents: list[bytes]) -> list[tuple[int, str]]:
    """Events already encoded (``encode_event``), in one statement and one transaction: each
    one's place in the chain (seq, hash as hex), in order."""
    batch = b"[" + b",".join(documents) + b"]"
    cur = await conn.execute(_APPEND, (batch.decode(),), prepare=True)
    return [(int(seq), bytes(digest).hex()) for seq, digest in await cur.fetchall()]


async def append_batch(conn: psycopg.AsyncConnection[Any],
                       events: list[AuditEvent]) -> list[Receipt]:
    """One statement, one transaction: the events placed in order, each with its receipt."""
    places = await append_encoded(conn, [encode_event(event) for event in events])
    return [Receipt(str(e.event_id), seq, digest)
            for e, (seq, digest) in zip(events, places, strict=True)]


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
