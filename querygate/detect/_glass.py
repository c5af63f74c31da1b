"""Break the glass for watched subjects: the gateway's guard, before any row leaves.

With ``detect.watch.without_purpose: reason`` a call that would release a watched
subject needs a reason unless a purpose check gives the caller a purpose for it
(every ``purpose:`` check of the subject's type is asked, whatever the caller's
role); without one it is refused. With ``refuse`` it is refused outright. Either
way the audit event says so in its ``context`` (``watch``: ``reason`` or
``refused``; ``watch_subjects``: which), and the detector alerts on that event
(``watch.subject``). The refusal names what to do, never the subject.

The guard keeps its own copy of the watch list (``ListsReader``): re-read every
``refresh_s`` without a restart, on the first call after it is due.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from querygate.detect._refresh import ListsReader
from querygate.detect._watch import Lists, WatchSettings
from querygate.errors import PolicyDenied, ProjectError
from querygate.guards import CallContext, Guard, note, small_pool
from querygate.project import Problems, Project
from querygate.purpose import Check, bindings, load_requirements

Subjects = tuple[tuple[str, str], ...]
MAX_NOTED = 20  # watched subjects named in one audit event's context


class WatchGuard:
    """Refuses (or asks a reason for) watched subjects released without a purpose match."""

    def __init__(self, project: Project, watch: WatchSettings, checks: dict[str, Check]) -> None:
        self.project = project
        self.mode = watch.watch.without_purpose
        self.reader = ListsReader(watch, project.database_url, name="querygate-watch")
        self.checks = checks
        self.pool: AsyncConnectionPool[Any] | None = None
        self._lists: Lists | None = None
        self._keys: frozenset[tuple[str, str]] = frozenset()

    async def open(self) -> None:
        await self.reader.load()  # a watch list that cannot be read stops the start
        if self.checks:  # the checks read production tables: read-only, like functions
            self.pool = await small_pool(self.project.database_url, self.project.settings,
                                         name="querygate-watch", read_only=True)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    async def before_run(self, call: CallContext) -> None:
        return None

    def watched(self, subjects: Subjects) -> list[tuple[str, str]]:
        """The subjects the watch list names, as it is now."""
        lists = self.reader.lists
        if lists is not self._lists:
            self._lists = lists
            self._keys = frozenset(_pair(s) for s in lists.watched)
        keys = self._keys
        return [s for s in subjects if s in keys] if keys else []

    async def before_release(self, call: CallContext, subjects: Subjects) -> None:
        await self.reader.refresh()
        hits = self.watched(subjects)
        if not hits:
            return
        unmatched = [s for s in hits if s not in await self._purposed(call, hits)]
        if not unmatched:
            return
        note(call, "watch_subjects", ",".join(f"{t}:{i}" for t, i in unmatched[:MAX_NOTED]))
        if self.mode == "reason" and call.reason is not None:
            note(call, "watch", "reason")
            return
        note(call, "watch", "refused")
        what = "a record" if len(unmatched) == 1 else f"{len(unmatched)} records"
        head = (f"this call returns {what} the organisation watches, and no purpose check gives "
                "you a purpose for it; no rows were released")
        if self.mode == "reason":
            raise PolicyDenied("watch.reason", f"{head}. Call again with a reason (--reason, or "
                               "\"reason\" in the request body) saying why you need it: the "
                               "access is recorded and reviewed")
        raise PolicyDenied("watch.refuse", f"{head}. Work from a case that gives you this "
                           "purpose, or ask an admin")

    async def _purposed(self, call: CallContext, hits: list[tuple[str, str]]
                        ) -> set[tuple[str, str]]:
        """The watched subjects some purpose check gives the caller; none when a check fails
        (the call then needs what a miss needs)."""
        checks = [c for c in self.checks.values() if any(t == c.subject for t, _ in hits)]
        if not checks or self.pool is None:
            return set()
        who = call.identity
        user_id = who.context.get("on_behalf_of") or who.user_id  # an agent: its person's
        user_email = who.context.get("on_behalf_of_email") or who.email
        found: set[tuple[str, str]] = set()
        try:
            async with self.pool.connection(timeout=self.project.settings.pool_timeout_s) as conn:
                for check in checks:
                    ids = [i for t, i in hits if t == check.subject]
                    params = bindings(check, user_id, user_email, ids, call.reason,
                                      call.function.name)
                    async with conn.transaction():
                        rows = await (await conn.execute(check.sql, params)).fetchall()
                    found |= {(check.subject, str(row[0])) for row in rows if row}
        except (PoolTimeout, psycopg.Error):
            note(call, "watch_purpose", "error")
            return set()
        return found


def _pair(subject: str) -> tuple[str, str]:
    kind, _, ident = subject.partition(":")
    return kind, ident


def watch_guards(project: Project, problems: Problems = None) -> list[Guard]:
    """The watch guard, when ``detect.watch.without_purpose`` asks for one (else none).

    Errors in ``detect:`` are the detector settings' to report (``check`` gathers them
    there); here, with ``problems`` given, a broken section means no guard.
    """
    from querygate.detect._settings import load_settings

    try:
        watch = load_settings(project).watch
        checks = load_requirements(project, [] if problems is not None else None)[0]
    except ProjectError:
        if problems is not None:
            return []
        raise
    source = watch.watch
    if source.without_purpose == "alert" or (source.inline, source.file, source.sql) == \
            ((), None, None):
        return []
    return [WatchGuard(project, watch, checks)]
