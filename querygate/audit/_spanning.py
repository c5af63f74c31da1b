"""Searches that span the live store and the archives: ``audit subject`` and ``audit search``
answer from both, as one log.

The archives (``audit.archives``: Parquet or JSONL files written by ``audit export``) are read in
place by DuckDB, embedded in this process, once every file has been verified
(``_archived``): a file that fails is an error naming it, never a silent gap or a silent use.
Events present in both places (a month archived but not yet detached) are counted once, from
the live store. Results are newest first, as for the live store alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg

from querygate.audit._archived import (
    Archive,
    VerifiedCache,
    anchor,
    archive_paths,
    default_cache,
    verify_files,
)
from querygate.audit._checkpoint import Checkpoint, signature_ok
from querygate.audit._keeper import CheckpointConfig
from querygate.audit._parquet import _ORDER, _lines, _pyarrow, is_parquet
from querygate.audit._read import StoredEvent
from querygate.audit._search import MAX_LIMIT, Query, search
from querygate.errors import ArchiveError
from querygate.project import Project


@dataclass(frozen=True)
class Archives:
    """The configured archive files, the checkpoints whose signatures hold, and the cache of
    files already verified."""

    paths: tuple[Path, ...]
    signed: tuple[Checkpoint, ...]
    cache: VerifiedCache

    @classmethod
    def from_project(cls, project: Project, signed: Sequence[Checkpoint]) -> Archives | None:
        paths = archive_paths(project)
        if not paths:
            return None
        return cls(tuple(paths), tuple(signed), default_cache(project))

    @classmethod
    def for_project(cls, project: Project) -> Archives | None:
        """The project's archives with the checkpoints whose signature holds, which every
        archive must be anchored to; None when ``audit.archives`` names none."""
        if not archive_paths(project):
            return None
        config = CheckpointConfig.from_project(project)
        public = config.verify_key()
        signed = [c for c in config.stored() if public is not None and signature_ok(c, public)]
        return cls.from_project(project, signed)


def _source(archives: Sequence[Archive]) -> str:
    files = []
    for archive in archives:
        if not is_parquet(archive.path):
            raise ArchiveError(f"archive {archive.path}: only Parquet archives are queried in "
                               "place; export the month again with --format parquet")
        files.append("'" + str(archive.path).replace("'", "''") + "'")
    return f"read_parquet([{', '.join(files)}])"


def archived_statement(archives: Sequence[Archive], query: Query) -> tuple[str, list[Any]]:
    """DuckDB SQL and arguments for ``query`` over the archive files."""
    where: list[str] = []
    args: list[Any] = []
    if query.subject:  # the canonical JSON of the subject, as the file holds it
        where.append("contains(CAST(subjects AS VARCHAR), ?)")
        args.append(orjson.dumps({"type": query.subject[0], "id": query.subject[1]}).decode())
    if query.user:
        if "@" in query.user:
            where.append("actor_email = ?")
            args.append(query.user.lower())
        else:
            where.append("(actor_id = ? OR actor_email = ?)")
            args += [query.user, query.user.lower()]
    for column, value in (("function_name", query.function), ("decision", query.decision)):
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    if query.since:
        where.append("occurred_at >= ?")
        args.append(query.since)
    if query.until:
        where.append("occurred_at < ?")
        args.append(query.until)
    text = (f"SELECT {', '.join(_ORDER)} FROM {_source(archives)} "
            f"{'WHERE ' + ' AND '.join(where) if where else ''} "
            "ORDER BY occurred_at DESC, seq DESC LIMIT ?")
    return text, [*args, max(1, min(query.limit, MAX_LIMIT))]


def search_archived(archives: Sequence[Archive], query: Query) -> list[StoredEvent]:
    """Events of verified archives matching ``query``, newest first."""
    try:
        import duckdb
    except ImportError:
        raise ArchiveError("querying archives needs DuckDB: pip install "
                           "'querygate[archives]'") from None
    pa = _pyarrow()
    text, args = archived_statement(archives, query)
    with duckdb.connect() as conn:
        try:
            conn.execute("SET TimeZone = 'UTC'")  # the exact times are formatted in UTC
            table: Any = conn.sql(text, params=args).to_arrow_table()
        except duckdb.Error as exc:
            raise ArchiveError(f"the archives could not be read: {exc}") from None
    found = [StoredEvent.from_export(line) for batch in table.to_batches()
             for line in _lines(pa, batch)]
    if query.subject:  # exact, whatever the JSON text held around the match
        found = [e for e in found if query.subject in e.event.subjects]
    return found


def combined(live: Sequence[StoredEvent], archived: Sequence[StoredEvent],
             limit: int) -> list[StoredEvent]:
    """One answer, newest first: an event in both places counts once (the live store's)."""
    seen = {e.seq for e in live}
    every = [*live, *(e for e in archived if e.seq not in seen)]
    every.sort(key=lambda e: (e.event.occurred_at, e.seq), reverse=True)
    return every[:max(1, min(limit, MAX_LIMIT))]


async def search_everywhere(conn: psycopg.AsyncConnection[Any], query: Query,
                            archives: Archives | None) -> list[StoredEvent]:
    """``search`` over the live store, and over the archives when there are any."""
    live = await search(conn, query)
    if archives is None:
        return live
    verified = await asyncio.to_thread(verify_files, archives.paths, archives.signed,
                                       archives.cache)
    await anchor(conn, verified, archives.signed)
    archived = await asyncio.to_thread(search_archived, verified, query)
    return combined(live, archived, query.limit)
