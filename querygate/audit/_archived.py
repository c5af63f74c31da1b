"""Archived months trusted only once verified: each Parquet or JSONL file's chain recomputed,
the files joined end to end, and the last archived event vouched for by a signed checkpoint.

A file is verified once per content: its SHA-256 and what its walk found (first and last seq,
the hashes at both ends) are kept in a small cache, authenticated with an HMAC under the
project's secret key. A file whose bytes change has a new digest and is walked again; a cache
that was edited is ignored. The anchoring is checked on every use: the last archived event's
hash must equal a signed checkpoint's head, or link to the live store's next event and from
there, event by event, to the first signed checkpoint after it.
"""

from __future__ import annotations

import glob
import hashlib
import hmac
import itertools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg

from querygate.audit._archive import read_events, verify_export
from querygate.audit._checkpoint import Checkpoint
from querygate.audit._read import COLUMNS, StoredEvent
from querygate.errors import ArchiveError
from querygate.project import Project

CACHE_NAME = "archives-verified.json"



@dataclass(frozen=True)
class Archive:
    """A verified file: events ``first``..``last``, ``prev`` the hash before the first and
    ``head`` the hash of the last (hex)."""

    path: Path
    digest: str
    first: int
    last: int
    prev: str
    head: str


def archive_paths(project: Project) -> list[Path]:
    """The files ``audit.archives`` names (paths or glob patterns, relative to the project)."""
    raw = project.section("audit").get("archives") or []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise ArchiveError("audit.archives must be a list of paths or glob patterns")
    found: set[Path] = set()
    for pattern in raw:
        full = Path(pattern) if Path(pattern).is_absolute() else project.root / pattern
        matches = [Path(p) for p in glob.glob(str(full))]
        if not matches and not glob.has_magic(pattern):
            raise ArchiveError(f"audit.archives: {pattern} does not exist")
        found.update(p for p in matches if p.is_file())
    return sorted(found)


def digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as data:
        while chunk := data.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


class VerifiedCache:
    """Digest -> [first, last, prev, head] of files already walked, HMAC'd with ``key``."""

    def __init__(self, path: Path, key: bytes) -> None:
        self.path, self._key = path, hashlib.sha256(b"archive-cache\0" + key).digest()
        self.entries: dict[str, list[Any]] = {}
        try:
            stored = orjson.loads(path.read_bytes())
            body = orjson.dumps(stored["entries"], option=orjson.OPT_SORT_KEYS)
            if hmac.compare_digest(stored["mac"], self._mac(body)):
                self.entries = stored["entries"]
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
            pass  # no cache, or one that was not ours: every file is walked

    def _mac(self, body: bytes) -> str:
        return hmac.new(self._key, body, hashlib.sha256).hexdigest()

    def save(self) -> None:
        body = orjson.dumps(self.entries, option=orjson.OPT_SORT_KEYS)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_name(self.path.name + ".tmp")
            temporary.write_bytes(orjson.dumps({"entries": self.entries, "mac": self._mac(body)}))
            os.replace(temporary, self.path)
        except OSError:
            pass  # a read-only place: the next run walks the files again


def default_cache(project: Project) -> VerifiedCache:
    configured = project.section("audit").get("archive_cache")
    if isinstance(configured, str):
        folder = Path(configured) if Path(configured).is_absolute() else project.root / configured
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        tag = hashlib.sha256(str(project.root.resolve()).encode()).hexdigest()[:16]
        folder = Path(base) / "querygate" / tag
    return VerifiedCache(folder / CACHE_NAME, project.secret_key)


def _walk(path: Path, signed: Sequence[Checkpoint]) -> list[Any]:
    """Recompute one file's chain (against the checkpoints that fall inside it)."""
    try:
        events = read_events(path)
        result = verify_export(events, signed)
        first = next(iter(read_events(path)), None)
    except (ValueError, OSError) as exc:
        raise ArchiveError(f"archive {path}: cannot be read ({exc})") from None
    if not result.ok:
        raise ArchiveError(f"archive {path} fails verification at event seq "
                           f"{result.first_bad_seq}: {result.problem}; it was not used")
    if first is None:
        raise ArchiveError(f"archive {path} holds no events")
    return [result.start_seq + 1, result.head_seq, first["prev_hash"], result.head_hash]


def verify_files(paths: Iterable[Path], signed: Sequence[Checkpoint],
                 cache: VerifiedCache) -> list[Archive]:
    """Every file walked (or known by its digest), then joined end to end in seq order."""
    archives, changed = [], False
    for path in paths:
        sha = digest(path)
        if sha not in cache.entries:
            cache.entries[sha], changed = _walk(path, signed), True
        first, last, prev, head = cache.entries[sha]
        archives.append(Archive(path, sha, int(first), int(last), str(prev), str(head)))
    if changed:
        cache.save()
    archives.sort(key=lambda a: a.first)
    for before, after in itertools.pairwise(archives):
        if after.first != before.last + 1 or after.prev != before.head:
            raise ArchiveError(f"archives {before.path} (seq {before.first}-{before.last}) and "
                               f"{after.path} (seq {after.first}-{after.last}) do not join: "
                               "a file is missing, repeated or was altered")
    return archives


async def anchor(conn: psycopg.AsyncConnection[Any], archives: Sequence[Archive],
                 signed: Sequence[Checkpoint]) -> None:
    """The last archived event is vouched for by a signed checkpoint: its head exactly, or the
    first one after it, reached through the live store's events."""
    tail = archives[-1]
    if any(c.size == tail.last and c.head_hash == tail.head for c in signed):
        return
    later = sorted(c.size for c in signed if c.size > tail.last)
    if not later:
        raise ArchiveError(f"no signed checkpoint vouches for archive {tail.path} (it ends at "
                           f"seq {tail.last}): run `querygate audit checkpoint`, then ask again")
    cur = await conn.execute(f"SELECT {COLUMNS} FROM querygate.audit_events WHERE seq > %s "
                             "AND seq <= %s ORDER BY seq", (tail.last, later[0]))
    lines = [StoredEvent(row).export() for row in await cur.fetchall()]
    if not lines or lines[0]["seq"] != tail.last + 1 or lines[0]["prev_hash"] != tail.head:
        raise ArchiveError(f"archive {tail.path} does not link to the live log's next event "
                           f"(seq {tail.last + 1}): the archive or the log was altered")
    result = verify_export(lines, signed)
    if not result.ok or result.head_seq != later[0]:
        raise ArchiveError(f"the live log between archive {tail.path} and the checkpoint at seq "
                           f"{later[0]} fails verification at seq {result.first_bad_seq}: "
                           f"{result.problem}")
