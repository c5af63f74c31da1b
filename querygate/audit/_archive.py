"""Verifying exported files on their own: archived months stay checkable without the database.

Export files are JSONL or Parquet (``_parquet``; told apart by their first bytes), and a
Parquet file reads back as the same lines. Each exported line carries the exact values that
were hashed (``occurred_at_us``, ``duration_us``, ``policy_version``) and its place in the
chain, so the chain can be recomputed from files alone. Several files (say, consecutive months,
in either form) are merged by ``seq``. A signed checkpoint whose size falls inside the files
vouches for every event up to it.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from querygate.audit._checkpoint import Checkpoint
from querygate.audit._event import GENESIS, link
from querygate.audit._parquet import is_parquet, read_parquet
from querygate.audit._read import StoredEvent
from querygate.audit._verify import Verification


def read_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The events of one JSONL export file, in file order (sequence order)."""
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError:
                    raise ValueError(f"{path.name}:{number} is not a JSON line") from None


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """The events of one export file, JSONL or Parquet, in file order."""
    return read_parquet(path) if is_parquet(path) else read_lines(path)


def merged(paths: Sequence[Path]) -> Iterator[dict[str, Any]]:
    """The events of several export files (JSONL, Parquet or both), merged into one sequence
    order."""
    return heapq.merge(*(read_events(p) for p in paths), key=lambda e: int(e["seq"]))


def _problem(stored: StoredEvent, expected: int, prev: bytes | None) -> str | None:
    if stored.seq != expected:
        return f"sequence jumps from {expected - 1} to {stored.seq} (events missing or reordered)"
    if prev is not None and stored.prev_hash != prev:
        return "prev_hash does not match the previous event's hash"
    if stored.event.content_hash() != stored.content_hash:
        return "content does not match its hash (a field was edited)"
    if link(stored.prev_hash, stored.seq, stored.content_hash) != stored.hash:
        return "hash does not link this event to the chain"
    return None


def verify_export(events: Iterable[dict[str, Any]],
                  checkpoints: Sequence[Checkpoint] = ()) -> Verification:
    """Recompute the chain of exported events; ``start_seq`` says where the files begin and
    ``checkpoints`` how many signed checkpoints fell inside and matched."""
    signed = {c.size: c.head_hash for c in checkpoints}
    expected, prev, start, checked, matched = 0, None, 0, 0, 0
    for line in events:
        try:
            stored = StoredEvent.from_export(line)
        except (KeyError, TypeError, ValueError):
            return Verification(False, checked, expected - 1, (prev or b"").hex(),
                                line.get("seq") if isinstance(line, dict) else None,
                                "the line lacks the exact fields (export it again with this "
                                "version of querygate)", matched, start)
        if prev is None:
            start, expected = stored.seq - 1, stored.seq
            prev = GENESIS if stored.seq == 1 else None
            if start in signed:
                prev = bytes.fromhex(signed[start])
        problem = _problem(stored, expected, prev)
        if problem is None and stored.seq in signed:
            if signed[stored.seq] != stored.hash.hex():
                problem = "this event's hash differs from the one a signed checkpoint recorded"
            matched += 1
        if problem is not None:
            return Verification(False, checked, expected - 1, (prev or b"").hex(), stored.seq,
                                problem, matched, start)
        prev, expected, checked = stored.hash, expected + 1, checked + 1
    return Verification(True, checked, expected - 1, (prev or GENESIS).hex(), None, None,
                        matched, start)
