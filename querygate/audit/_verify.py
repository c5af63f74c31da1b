"""``audit verify``: recompute the chain and name the first event that does not hold."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from querygate.audit._event import GENESIS, link
from querygate.audit._read import COLUMNS, StoredEvent


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None


def _check_one(stored: StoredEvent, expected_seq: int, prev: bytes) -> str | None:
    if stored.seq != expected_seq:
        return f"sequence jumps from {expected_seq - 1} to {stored.seq} (events missing or reordered)"
    if stored.prev_hash != prev:
        return "prev_hash does not match the previous event's hash (an event was removed, " \
               "reordered or rewritten)"
    if stored.event.content_hash() != stored.content_hash:
        return "content does not match its hash (a field was edited)"
    if link(prev, stored.seq, stored.content_hash) != stored.hash:
        return "hash does not link this event to the chain"
    return None


async def verify(conn: psycopg.AsyncConnection[Any], *, batch: int = 5000) -> Verification:
    """Walk the log from the first event; stop at the first that breaks the chain."""
    prev, expected, checked = GENESIS, 1, 0
    async with conn.transaction(), conn.cursor(name="querygate_verify") as cur:
        cur.itersize = batch
        await cur.execute(f"SELECT {COLUMNS} FROM querygate.audit_events ORDER BY seq")
        async for row in cur:
            stored = StoredEvent(row)
            problem = _check_one(stored, expected, prev)
            if problem is not None:
                return Verification(False, checked, expected - 1, prev.hex(), stored.seq, problem)
            prev, expected, checked = stored.hash, expected + 1, checked + 1
    head = await (await conn.execute("SELECT seq, hash FROM querygate.audit_head")).fetchone()
    if head is None or head[0] != expected - 1 or bytes(head[1]) != prev:
        return Verification(False, checked, expected - 1, prev.hex(), expected,
                            "the log ends before its recorded head (events at the end were "
                            "removed)")
    return Verification(True, checked, expected - 1, prev.hex())
