"""The integrity statement every report carries: was the log it is drawn from verified?"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from querygate import audit
from querygate.audit import CheckpointConfig, StoredEvent
from querygate.reports._model import Integrity


def _event_ok(stored: StoredEvent) -> bool:
    """The event's content matches its hash, and its hash links it to its predecessor."""
    return (stored.event.content_hash() == stored.content_hash
            and audit.link(stored.prev_hash, stored.seq, stored.content_hash) == stored.hash)


_CONTENT = {
    "fast": "Each event's fields are held to its hash by the database's content constraint, "
            "found in place and validated on every part of the log.",
    "deep": "Each event's fields were rendered and hashed one by one by the verifier.",
}


async def integrity(conn: psycopg.AsyncConnection[Any], config: CheckpointConfig | None,
                    events: Sequence[StoredEvent], *, quick: bool = False) -> Integrity:
    """Verify the log (all of it, or after the newest checkpoint when ``quick``) and each event
    the report lists; say what was checked in words a non-engineer can read."""
    result = await audit.verify_log(conn, config, from_checkpoint=quick)
    bad = [e.seq for e in events if not _event_ok(e)]
    walked = (f"{result.checked:,} events after the signed checkpoint at event {result.start_seq:,}"
              if result.start_seq else f"all {result.checked:,} events")
    details = (
        f"Chain recomputed over {walked}; head event {result.head_seq:,}, "
        f"hash {result.head_hash[:16]}….",
        f"Signed checkpoints matched: {result.checkpoints}.",
        *([_CONTENT[result.walk]] if result.walk else []),
        *([f"Events listed in this report checked one by one: {len(events) - len(bad)} of "
           f"{len(events)} intact."] if events else []),
    )
    if result.ok and not bad:
        return Integrity(True, "The audit log was verified when this report was made: no event "
                               "was altered, removed or reordered.", details)
    where = (f"event {result.first_bad_seq}" if result.first_bad_seq else "its checkpoints")
    problem = result.problem or f"events {bad[:5]} do not match their hashes"
    return Integrity(False, f"WARNING: the audit log failed verification at {where}: {problem}. "
                            "This report may be incomplete or altered.", details)
