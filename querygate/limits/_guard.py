"""The limits guard: calls per window and different subjects per day and per 30 days.

Counters live in PostgreSQL (the audit store's database), so they hold across
restarts and across every gateway process. Rate limits count a call before its
query runs; subject quotas count, before any row leaves, the subjects a call
would add, under a per-person advisory lock so two processes cannot both slip
under the limit. Days are UTC days.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from querygate.errors import LimitExceeded, QuerygateError, Unavailable
from querygate.guards import CallContext, note, small_pool
from querygate.limits._config import Limit, LimitsConfig, load_limits
from querygate.project import Problems, Project

CLEANUP_EVERY_S = 3600

_COUNT_CALLS = """
INSERT INTO querygate.limit_calls AS c (actor_id, scope, window_s, window_start, calls)
SELECT %(actor)s, w.scope, w.seconds,
       to_timestamp(floor(extract(epoch FROM now()) / w.seconds) * w.seconds), 1
FROM unnest(%(scopes)s::text[], %(seconds)s::int[]) AS w(scope, seconds)
ON CONFLICT (actor_id, scope, window_s, window_start) DO UPDATE SET calls = c.calls + 1
RETURNING scope, window_s, calls, window_start + make_interval(secs => window_s)
"""

_COUNT_SUBJECTS = """
WITH today AS (SELECT (now() AT TIME ZONE 'UTC')::date AS d),
mine AS (
    SELECT s.subject, s.day FROM querygate.limit_subjects s, today
    WHERE s.actor_id = %(actor)s AND s.scope = %(scope)s AND s.day > today.d - 30
),
asked AS (SELECT DISTINCT a AS subject FROM unnest(%(subjects)s::text[]) AS a)
SELECT
    (SELECT count(DISTINCT subject) FROM mine, today WHERE day = today.d),
    (SELECT count(*) FROM asked WHERE subject NOT IN
        (SELECT subject FROM mine, today WHERE day = today.d)),
    (SELECT count(DISTINCT subject) FROM mine),
    (SELECT count(*) FROM asked WHERE subject NOT IN (SELECT subject FROM mine))
"""

_RECORD_SUBJECTS = """
INSERT INTO querygate.limit_subjects (actor_id, scope, day, subject)
SELECT %(actor)s, %(scope)s, (now() AT TIME ZONE 'UTC')::date, a
FROM unnest(%(subjects)s::text[]) AS a
ON CONFLICT DO NOTHING
"""

_CLEANUP = """
DELETE FROM querygate.limit_calls WHERE window_start < now() - interval '2 days';
DELETE FROM querygate.limit_subjects WHERE day < (now() AT TIME ZONE 'UTC')::date - 31;
"""


class LimitsGuard:
    """Refuses with 429 and a message that says which limit, how far, and when it resets."""

    def __init__(self, project: Project, config: LimitsConfig) -> None:
        self.project = project
        self.config = config
        self.pool: AsyncConnectionPool[Any] | None = None
        self._cleaned = 0.0

    async def open(self) -> None:
        self.pool = await small_pool(self.project.audit_url or self.project.database_url,
                                     self.project.settings, name="querygate-limits",
                                     read_only=False)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    async def before_run(self, call: CallContext) -> None:
        limits = [lim for lim in self.config.for_call(call.identity, call.function.name)
                  if lim.counts == "calls"]
        if not limits:
            return
        windows = sorted({(lim.scope, lim.window) for lim in limits})
        params: dict[str, object] = {"actor": call.identity.user_id,
                                     "scopes": [w[0] for w in windows],
                                     "seconds": [w[1] for w in windows]}
        rows = await self._run(_COUNT_CALLS, params)
        counted = {(r[0], r[1]): (int(r[2]), r[3]) for r in rows}
        for lim in limits:
            calls, resets = counted[(lim.scope, lim.window)]
            if calls > lim.value:
                self._over(call, lim, f"this is call {calls} {_per(lim.window)}; the limit is "
                                      f"{lim.value} ({lim.source}: {lim.kind}). Try again after "
                                      f"{_clock(resets)}")

    async def before_release(self, call: CallContext,
                             subjects: tuple[tuple[str, str], ...]) -> None:
        limits = [lim for lim in self.config.for_call(call.identity, call.function.name)
                  if lim.counts == "subjects"]
        if not limits or not subjects:
            return
        keys = sorted({f"{t}:{i}" for t, i in subjects})
        try:
            await self._subjects(call, limits, keys)
        except (PoolTimeout, psycopg.Error) as exc:
            raise _unavailable(exc) from None

    async def _subjects(self, call: CallContext, limits: list[Limit], keys: list[str]) -> None:
        assert self.pool is not None
        actor = call.identity.user_id
        async with self.pool.connection(timeout=self.project.settings.pool_timeout_s) as conn, \
                conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                               (f"querygate.limits:{actor}",))
            for scope in sorted({lim.scope for lim in limits}):
                params = {"actor": actor, "scope": scope, "subjects": keys}
                row = await (await conn.execute(_COUNT_SUBJECTS, params)).fetchone()
                assert row is not None
                for lim in (lim for lim in limits if lim.scope == scope):
                    have, new = (row[0], row[1]) if lim.window == 1 else (row[2], row[3])
                    if have + new > lim.value:
                        self._over(call, lim, _quota(lim, have, new))
                await conn.execute(_RECORD_SUBJECTS, params)

    def _over(self, call: CallContext, lim: Limit, message: str) -> None:
        if self.config.mode == "warn":
            note(call, "limit", f"exceeded {lim.kind} ({lim.source})")
            return
        raise LimitExceeded(f"limit reached: {message}")

    async def _run(self, sql: str, params: dict[str, object]) -> list[tuple[Any, ...]]:
        assert self.pool is not None
        try:
            async with self.pool.connection(timeout=self.project.settings.pool_timeout_s) as conn:
                rows: list[tuple[Any, ...]] = await (await conn.execute(sql, params)).fetchall()
                if time.monotonic() - self._cleaned > CLEANUP_EVERY_S:
                    self._cleaned = time.monotonic()
                    await conn.execute(_CLEANUP)
                return rows
        except (PoolTimeout, psycopg.Error) as exc:
            raise _unavailable(exc) from None


def _unavailable(exc: Exception) -> QuerygateError:
    return Unavailable("the limits store could not count this call, so it was refused "
                       f"({type(exc).__name__}); try again shortly")


def _per(seconds: int) -> str:
    return {60: "this minute", 3600: "this hour"}.get(seconds, "today (UTC)")


def _clock(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%H:%M:%S UTC")


def _quota(lim: Limit, have: int, new: int) -> str:
    period = "today (UTC)" if lim.window == 1 else "in the last 30 days"
    resets = "It resets at 00:00 UTC" if lim.window == 1 else \
        "It frees up as days leave the 30-day window"
    return (f"this call would bring you to {have + new} different subjects {period}; the limit "
            f"is {lim.value} ({lim.source}: {lim.kind}), so no rows were released. {resets}; "
            "an admin can raise it under limits in querygate.yaml")


def build_limits_guard(project: Project, problems: Problems = None) -> LimitsGuard | None:
    """The guard, when the project sets any limit (``problems``: see ``load_limits``)."""
    config = load_limits(project, problems)
    return LimitsGuard(project, config) if config else None
