"""The watch list and relationships as they are now: files and queries, re-read without a restart.

The online detector and the watch guard each keep a ``ListsReader``. ``refresh()``
re-reads when ``refresh_s`` has passed: a file when it changed, a query every
time. A failed re-read keeps the lists as they were (and logs why); ``load()``
raises instead, for a start that must not go on without them.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import psycopg

from querygate.detect._watch import Lists, WatchSettings, link_rows, lists_from_files, watch_rows
from querygate.errors import ProjectError, QuerygateError

log = logging.getLogger("querygate.detect")

Queried = tuple[list[tuple[str, str]], list[tuple[str, str, str]]]


def _mtime(path: Path | None) -> float | None:
    try:
        return path.stat().st_mtime_ns / 1e9 if path is not None else None
    except OSError:
        return None


class ListsReader:
    """One process's copy of the lists; ``database_url`` runs ``watch.sql`` and
    ``relationships.sql`` (read-only)."""

    def __init__(self, settings: WatchSettings, database_url: str, *,
                 name: str = "querygate-detect-lists") -> None:
        self.settings = settings
        self.database_url = database_url
        self.name = name
        self.lists = Lists()
        self._due = 0.0  # time.monotonic() of the next re-read
        self._stamps: tuple[float | None, ...] = ()

    @property
    def every_s(self) -> float:
        return min(self.settings.watch.refresh_s, self.settings.relationships.refresh_s)

    async def load(self) -> Lists:
        """Read the lists now; a ProjectError says what could not be read."""
        self._due = time.monotonic() + self.every_s
        stamps = tuple(_mtime(s.file) for s in (self.settings.watch, self.settings.relationships))
        try:
            lists = lists_from_files(self.settings, queried=await self._query())
        except psycopg.Error as exc:
            raise ProjectError(f"detect.watch or detect.relationships: PostgreSQL cannot run its "
                               f"sql (SQLSTATE {exc.sqlstate})") from None
        self._stamps, self.lists = stamps, lists
        return lists

    async def refresh(self, *, force: bool = False) -> bool:
        """Re-read when due: files when they changed, queries every time. True on a change."""
        settings = self.settings
        if not settings.configured or (not force and time.monotonic() < self._due):
            return False
        self._due = time.monotonic() + self.every_s  # one re-read at a time, others go on
        stamps = tuple(_mtime(s.file) for s in (settings.watch, settings.relationships))
        if stamps == self._stamps and (settings.watch.sql, settings.relationships.sql) == \
                (None, None):
            return False
        before = self.lists
        try:
            await self.load()
        except (QuerygateError, OSError) as exc:
            log.warning("the watch list or relationships could not be read, the previous ones "
                        "stay: %s", getattr(exc, "message", type(exc).__name__))
            return False
        return self.lists != before

    async def _query(self) -> Queried:
        watch_sql, links_sql = self.settings.watch.sql, self.settings.relationships.sql
        if (watch_sql, links_sql) == (None, None):
            return [], []
        async with await psycopg.AsyncConnection.connect(
                self.database_url, autocommit=True, application_name=self.name,
                connect_timeout=5) as conn:
            await conn.execute("SET default_transaction_read_only = on")
            watched = watch_rows(await (await conn.execute(watch_sql)).fetchall(),
                                 "detect.watch.sql") if watch_sql else []
            links = link_rows(await (await conn.execute(links_sql)).fetchall(),
                              "detect.relationships.sql") if links_sql else []
        return watched, links
