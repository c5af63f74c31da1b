"""``audit verify``: recompute the chain and name the first event that does not hold.

Two walks, both in sequence order, both checking every event's place in the chain (sequence,
``prev_hash``, the link hash) and the signed checkpoints (``_checkpoint``):

- **fast**, while the content constraint is in place and validated on every table of the log
  (``_content.structure_problem``): the database refuses any row whose columns do not hash to
  its ``content_hash``, so the walk reads only the stored hashes.
- **deep**, when the structure does not hold (the walk then says why) or on demand: the server
  renders each event's columns in canonical key order, which for an event written by this
  version *is* the hashed encoding, and the verifier hashes it. Anything else (an older store's
  ``jsonb``, a string the server escapes differently) is parsed and re-encoded canonically;
  content that still does not match is read in full and checked by the reference path
  (``AuditEvent.content_hash``) before it is called bad, so these shortcuts can only be slower,
  never wrong.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from psycopg.types.string import ByteaBinaryLoader

from querygate.audit._checkpoint import Checkpoint, read_folder, read_head, review
from querygate.audit._content import rendering, structure_problem
from querygate.audit._event import GENESIS, link
from querygate.audit._keeper import CheckpointConfig
from querygate.audit._read import COLUMNS, StoredEvent

BATCH = 2_000  # events per fetch: small, so the server renders the next while these are hashed
AHEAD = 4  # fetches queued at once
SWITCH_S = 0.0005  # the interpreter's switch interval during the walk

# The deep walk: every event rendered by the server, hashed here. The fast walk: the stored
# hashes alone, while the content constraint vouches for every row (``_content``).
_DEEP = (f"SELECT e.seq, e.content_hash, e.prev_hash, e.hash, {rendering('e.')} "
         f"FROM querygate.audit_events e WHERE e.seq > %s ORDER BY e.seq")
_FAST = ("SELECT e.seq, e.content_hash, e.prev_hash, e.hash "
         "FROM querygate.audit_events e WHERE e.seq > %s ORDER BY e.seq")


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
    walk: str = ""  # "fast" (stored hashes), "deep" (every event's content hashed), "" (no walk)
    structure: str | None = None  # why the content constraint could not vouch for the rows


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


def _check_links(walk: _Walk, rows: list[tuple[Any, ...]]) -> None:
    """The fast walk's check of a batch: each event's place in the chain, in order, stopping at
    the first that does not hold. (The hot loop of ``audit verify``: written flat, with the
    messages left to ``_place_problem``.)"""
    sha256 = hashlib.sha256
    expected, prev, signed, done = walk.expected, walk.prev, walk.signed, 0
    for seq, content_hash, prev_hash, hash_ in rows:
        if (seq != expected or prev_hash != prev
                or sha256(prev + seq.to_bytes(8, "big", signed=True) + content_hash).digest() != hash_
                or (seq in signed and signed[seq] != hash_)):
            _stop(walk, expected, prev, done, seq, prev_hash, content_hash, hash_)
            return
        expected, prev, done = seq + 1, hash_, done + 1
    walk.expected, walk.prev, walk.checked = expected, prev, walk.checked + done


def _check_rows(walk: _Walk, rows: list[tuple[Any, ...]]) -> None:
    """The deep walk's check of a batch: as ``_check_links``, and each event's rendered content
    hashed; content the shortcuts cannot confirm is noted for the reference path."""
    sha256 = hashlib.sha256
    expected, prev, signed, done = walk.expected, walk.prev, walk.signed, 0
    for seq, content_hash, prev_hash, hash_, rendered in rows:
        if (seq != expected or prev_hash != prev
                or sha256(prev + seq.to_bytes(8, "big", signed=True) + content_hash).digest() != hash_
                or (seq in signed and signed[seq] != hash_)):
            _stop(walk, expected, prev, done, seq, prev_hash, content_hash, hash_)
            return
        if sha256(rendered).digest() != content_hash and not _reencoded_ok(rendered, content_hash):
            walk.doubtful.append(seq)
        expected, prev, done = seq + 1, hash_, done + 1
    walk.expected, walk.prev, walk.checked = expected, prev, walk.checked + done


def _stop(walk: _Walk, expected: int, prev: bytes, done: int, seq: int, prev_hash: bytes,
          content_hash: bytes, hash_: bytes) -> None:
    walk.expected, walk.prev, walk.checked = expected, prev, walk.checked + done
    walk.bad_seq, walk.problem = seq, _place_problem(walk, seq, prev_hash, content_hash, hash_)


def _reencoded_ok(rendered: bytes, content_hash: bytes) -> bool:
    """The rendering parsed and re-encoded canonically (sorted keys, compact) matches."""
    try:
        canonical = orjson.dumps(orjson.loads(rendered), option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return False
    return hashlib.sha256(canonical).digest() == content_hash


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


async def _walk(conn: psycopg.AsyncConnection[Any], walk: _Walk, *, deep: bool) -> None:
    """Stream every event after ``walk.expected - 1`` in seq order. Each batch is checked on a
    worker thread while this thread keeps the next fetches flowing, so the server reads (and,
    deep, renders) while the verifier hashes (the check holds the interpreter lock; a short
    switch interval hands it back to the reader as soon as the server's data arrives)."""
    check = _check_rows if deep else _check_links
    interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_S)
    try:
        async with conn.cursor(name="querygate_verify", binary=True) as cur:
            # the rendered content as the server's UTF-8 bytes, hashed as is, never decoded
            # (psycopg swaps in its C loader: 0.8 against 1.5 us a row for a Python one)
            cur.adapters.register_loader("text", ByteaBinaryLoader)
            await cur.execute(_DEEP if deep else _FAST, (walk.expected - 1,))
            batches = _prefetch(cur)
            async for rows in batches:
                await asyncio.to_thread(check, walk, rows)
                if walk.problem is not None or walk.doubtful:
                    await _recheck(conn, walk)  # queued behind the fetches on the connection
                if walk.problem is not None:
                    await batches.aclose()
                    return
    finally:
        sys.setswitchinterval(interval)


async def _prefetch(cur: psycopg.AsyncServerCursor[Any]
                    ) -> AsyncGenerator[list[tuple[Any, ...]], None]:
    """The cursor's batches in order, ``AHEAD`` fetches kept queued."""
    pending: deque[asyncio.Future[list[tuple[Any, ...]]]] = deque()
    try:
        while True:
            while len(pending) < AHEAD:
                pending.append(asyncio.ensure_future(cur.fetchmany(BATCH)))
            await asyncio.sleep(0)  # let the fetches go out before the CPU-bound check
            rows = await pending.popleft()
            if not rows:
                return
            yield rows
    finally:
        for fetch in pending:
            await fetch


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


async def verify(conn: psycopg.AsyncConnection[Any], *, checkpoints: Sequence[Checkpoint] = (),
                 anchor: Checkpoint | None = None, deep: bool = False) -> Verification:
    """Walk the log (from the first event, or after ``anchor``, a checkpoint already trusted);
    stop at the first event that breaks the chain or contradicts a signed checkpoint. The walk
    is fast while the content constraint vouches for every row, deep otherwise or if asked."""
    walk = _Walk(1, GENESIS, {c.size: bytes.fromhex(c.head_hash) for c in checkpoints})
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        # Stream each partition's primary key in order (a merge), never sort the log on disk.
        await conn.execute("SET LOCAL enable_sort = off")
        # The planner would read the partitions' content constraints to exclude partitions; a
        # broken constraint (its type changed) must be reported, not fail the walk's plan.
        await conn.execute("SET LOCAL constraint_exclusion = off")
        _, head_seq, head_hash = await read_head(conn)
        structure = await structure_problem(conn)
        deep = deep or structure is not None
        start_problem = await _start(conn, anchor, walk)
        start = walk.expected - 1
        if start_problem is not None:
            return Verification(False, 0, start, "", anchor.size if anchor else 1, start_problem,
                                len(checkpoints), start, "deep" if deep else "fast", structure)
        await _walk(conn, walk, deep=deep)
    last = walk.expected - 1

    def result(bad_seq: int | None = None, problem: str | None = None) -> Verification:
        return Verification(problem is None, walk.checked, last, walk.prev.hex(), bad_seq, problem,
                            len(checkpoints), start, "deep" if deep else "fast", structure)

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
                     from_checkpoint: bool = False, deep: bool = False) -> Verification:
    """``audit verify``: the checkpoints in ``config.folder`` and, when ``checkpoints.s3`` is
    set, every version in the bucket first (signatures, no shrinking, no fork), then the chain
    against them; ``from_checkpoint`` walks only what follows the newest checkpoint the log
    still matches; ``deep`` hashes every event's content even where the constraint vouches
    for it."""
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
    return await verify(conn, checkpoints=usable, anchor=anchor, deep=deep)
