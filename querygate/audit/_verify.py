"""``audit verify``: recompute the chain and name the first event that does not hold.

The walk streams, in sequence order, each event's place in the chain and its content as the
server renders it in JSON; the content is re-encoded canonically here (sorted keys, compact) and
hashed. An event whose fast re-encoding does not match is read again in full and checked by the
reference path (``AuditEvent.content_hash``) before it is called bad, so the fast path can only
be slower, never wrong. Signed checkpoints (``_checkpoint``) are checked against the walk.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg

from querygate.audit._checkpoint import Checkpoint, read_folder, read_head, review
from querygate.audit._event import ENCODING_VERSION, GENESIS, link
from querygate.audit._keeper import CheckpointConfig
from querygate.audit._read import COLUMNS, StoredEvent

BATCH = 10_000  # events per fetch

# Each event's content as JSON, rendered by the server from the row's columns (row_to_json of
# a lateral row costs the server about half what json_build_object does). It is parsed and
# re-encoded canonically here, so the server's key order and spacing do not matter.
_CONTENT = f"""LATERAL (SELECT {ENCODING_VERSION} AS v, e.event_id,
    to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS occurred_at,
    e.actor_id, e.actor_email, e.actor_roles, e.function_name, e.parameters, e.decision,
    e.reason, e.error_code, e.rows_returned, e.fields, e.subjects, e.client_addr, e.duration_us,
    e.context, e.policy_version) AS c"""


_WALK = (f"SELECT e.seq, e.content_hash, e.prev_hash, e.hash, row_to_json(c)::text "
         f"FROM querygate.audit_events e, {_CONTENT} WHERE e.seq > %s ORDER BY e.seq")


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None
    checkpoints: int = 0  # signed checkpoints the log was checked against
    start_seq: int = 0  # events up to here were vouched for by a checkpoint, not walked


@dataclass
class _Walk:
    expected: int
    prev: bytes
    signed: dict[int, bytes]  # seq -> the head hash a checkpoint signed there
    checked: int = 0
    bad_seq: int | None = None
    problem: str | None = None
    doubtful: list[int] = field(default_factory=list)  # content to recheck by the reference path


def _place_problem(walk: _Walk, seq: int, prev_hash: bytes, content_hash: bytes,
                   hash_: bytes) -> str | None:
    if seq != walk.expected:
        return f"sequence jumps from {walk.expected - 1} to {seq} (events missing or reordered)"
    if prev_hash != walk.prev:
        return ("prev_hash does not match the previous event's hash (an event was removed, "
                "reordered or rewritten)")
    if link(walk.prev, seq, content_hash) != hash_:
        return "hash does not link this event to the chain"
    signed = walk.signed.get(seq)
    if signed is not None and signed != hash_:
        return ("this event's hash differs from the one a signed checkpoint recorded for it "
                "(the log was rewritten or restored from another history at or before here)")
    return None


async def _reference_ok(conn: psycopg.AsyncConnection[Any], seq: int) -> bool:
    cur = await conn.execute(f"SELECT {COLUMNS} FROM querygate.audit_events WHERE seq = %s",
                             (seq,))
    rows = await cur.fetchall()
    return len(rows) == 1 and StoredEvent(rows[0]).event.content_hash() == bytes(rows[0][18])


def _check_rows(walk: _Walk, rows: list[tuple[Any, ...]]) -> None:
    """Check a batch in order, stopping at the first place in the chain that does not hold;
    content the fast path cannot confirm is noted for the reference path. (The hot loop of
    ``audit verify``: written flat, with the messages left to ``_place_problem``.)"""
    sha256, dumps, loads, sort_keys = hashlib.sha256, orjson.dumps, orjson.loads, orjson.OPT_SORT_KEYS
    expected, prev, signed, done = walk.expected, walk.prev, walk.signed, 0
    for seq, content_hash, prev_hash, hash_, rendered in rows:
        if (seq != expected or prev_hash != prev
                or sha256(prev + seq.to_bytes(8, "big", signed=True) + content_hash).digest() != hash_
                or (seq in signed and signed[seq] != hash_)):
            walk.expected, walk.prev, walk.checked = expected, prev, walk.checked + done
            walk.bad_seq, walk.problem = seq, _place_problem(walk, seq, prev_hash, content_hash,
                                                             hash_)
            return
        try:
            if sha256(dumps(loads(rendered), option=sort_keys)).digest() != content_hash:
                walk.doubtful.append(seq)
        except (orjson.JSONDecodeError, orjson.JSONEncodeError):
            walk.doubtful.append(seq)
        expected, prev, done = seq + 1, hash_, done + 1
    walk.expected, walk.prev, walk.checked = expected, prev, walk.checked + done


async def _recheck(conn: psycopg.AsyncConnection[Any], walk: _Walk) -> None:
    """The reference path for doubtful content; a failure rewinds to the event before it."""
    for seq in walk.doubtful:
        if not await _reference_ok(conn, seq):
            cur = await conn.execute("SELECT hash FROM querygate.audit_events WHERE seq = %s",
                                     (seq - 1,))
            row = await cur.fetchone()
            walk.checked -= walk.expected - seq
            walk.expected, walk.prev = seq, bytes(row[0]) if row else GENESIS
            walk.bad_seq, walk.problem = seq, "content does not match its hash (a field was edited)"
            break
    walk.doubtful.clear()


async def _walk(conn: psycopg.AsyncConnection[Any], walk: _Walk) -> None:
    """Stream every event after ``walk.expected - 1`` in seq order. The next batch is fetched
    while this one is checked, so the server renders and the verifier hashes at the same time."""
    async with conn.cursor(name="querygate_verify", binary=True) as cur:
        await cur.execute(_WALK, (walk.expected - 1,))
        rows = await cur.fetchmany(BATCH)
        while rows:
            pending = asyncio.ensure_future(cur.fetchmany(BATCH))
            await asyncio.sleep(0)  # let the fetch go out before the CPU-bound check
            _check_rows(walk, rows)
            rows = await pending
            if walk.problem is not None or walk.doubtful:
                await _recheck(conn, walk)  # the connection is free again
                if walk.problem is not None:
                    return


async def _start(conn: psycopg.AsyncConnection[Any], anchor: Checkpoint | None,
                 walk: _Walk) -> str | None:
    """Begin after a trusted checkpoint: the event it signed must still be there, unchanged."""
    if anchor is None or anchor.size == 0:
        return None
    cur = await conn.execute("SELECT hash FROM querygate.audit_events WHERE seq = %s",
                             (anchor.size,))
    row = await cur.fetchone()
    if row is None or bytes(row[0]).hex() != anchor.head_hash:
        return (f"event {anchor.size} is missing or differs from the checkpoint that signed it "
                "(the log was rewritten, truncated or restored)")
    walk.expected, walk.prev = anchor.size + 1, bytes(row[0])
    return None


def _beyond_end(checkpoints: Sequence[Checkpoint], last: int) -> Checkpoint | None:
    longer = [c for c in checkpoints if c.size > last]
    return max(longer, key=lambda c: c.size) if longer else None


async def verify(conn: psycopg.AsyncConnection[Any], *, batch: int = 5000,
                 checkpoints: Sequence[Checkpoint] = (),
                 anchor: Checkpoint | None = None) -> Verification:
    """Walk the log (from the first event, or after ``anchor``, a checkpoint already trusted);
    stop at the first event that breaks the chain or contradicts a signed checkpoint."""
    del batch  # kept for callers of the first version; the walk streams in CHUNK ranges
    walk = _Walk(1, GENESIS, {c.size: bytes.fromhex(c.head_hash) for c in checkpoints})
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        # Stream each partition's primary key in order (a merge), never sort the log on disk.
        await conn.execute("SET LOCAL enable_sort = off")
        _, head_seq, head_hash = await read_head(conn)
        start_problem = await _start(conn, anchor, walk)
        start = walk.expected - 1
        if start_problem is not None:
            return Verification(False, 0, start, "", anchor.size if anchor else 1, start_problem,
                                len(checkpoints), start)
        await _walk(conn, walk)
    last = walk.expected - 1

    def result(bad_seq: int | None = None, problem: str | None = None) -> Verification:
        return Verification(problem is None, walk.checked, last, walk.prev.hex(), bad_seq, problem,
                            len(checkpoints), start)

    if walk.problem is not None:
        return result(walk.bad_seq, walk.problem)
    if last > head_seq:
        return result(head_seq + 1, f"events after the recorded head (seq {head_seq}) were added "
                                    "outside the append path")
    if head_seq != last or head_hash != walk.prev.hex():
        return result(last + 1, "the log ends before its recorded head (events at the end were "
                                "removed)")
    longer = _beyond_end(checkpoints, last)
    if longer is not None:
        return result(last + 1, (
            f"a checkpoint signed at {longer.time:%Y-%m-%d %H:%M:%S}Z recorded {longer.size} "
            f"events, but the log ends at {last}: events {last + 1}..{longer.size} were removed "
            "(a truncated tail, or an older backup restored)"))
    return result()


async def verify_log(conn: psycopg.AsyncConnection[Any], config: CheckpointConfig | None, *,
                     from_checkpoint: bool = False) -> Verification:
    """``audit verify``: the checkpoints in ``config.folder`` and, when ``checkpoints.s3`` is
    set, every version in the bucket first (signatures, no shrinking, no fork), then the chain
    against them; ``from_checkpoint`` walks only what follows the newest checkpoint the log
    still matches."""
    public = config.verify_key() if config is not None else None
    found = read_folder(config.folder) if config is not None else []
    if config is not None and config.s3 is not None:
        found = await asyncio.to_thread(config.with_bucket, found)
    if found and public is None:
        return Verification(False, 0, 0, "", None, "checkpoint files exist but no public key is "
                            "configured (set checkpoints.public_key)", len(found))
    log_id, head_seq, _ = await read_head(conn)
    checked = review(found, public, log_id) if public is not None else None
    usable = checked.usable if checked is not None else []
    if checked is not None and checked.problem is not None:
        return Verification(False, 0, 0, "", checked.bad_seq, checked.problem, len(usable))
    anchor = None
    if from_checkpoint:
        within = [c for c in usable if c.size <= head_seq]
        anchor = max(within, key=lambda c: c.size) if within else None
    return await verify(conn, checkpoints=usable, anchor=anchor)
