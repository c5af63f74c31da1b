"""The detector online: tail ``querygate.audit_events`` by seq, raise and keep alerts.

One process at a time runs it (a PostgreSQL advisory lock), wherever it is
started: in ``querygate serve`` (``DetectorService.run`` as a background task)
or alone (``querygate detect run``). At start it replays the last
``warmup_replay_days`` of the log without alerting, to rebuild the baselines,
then reads on from its saved cursor. Alerts are stored (idempotently: a replay
raises nothing twice), sent to the webhook, and may suspend the person.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import httpx
import orjson
import psycopg
from psycopg.types.json import set_json_loads

from querygate.detect._alert import Alert, severity_rank
from querygate.detect._detector import Detector
from querygate.detect._event import EVENT_COLUMNS, event_from_row
from querygate.detect._refresh import ListsReader
from querygate.detect._settings import Settings, load_settings
from querygate.detect._store import add_action, load_cursor, save_alert, save_cursor
from querygate.detect._watch import Lists
from querygate.detect._webhook import WebhookSender
from querygate.project import Project

log = logging.getLogger("querygate.detect")


LOCK = "querygate.detect"
BATCH = 2000


class DetectorService:
    """The online detector; ``run()`` until ``stop()``, or ``step()`` to read what is new."""

    def __init__(self, project: Project, settings: Settings | None = None, *,
                 webhook_client: httpx.AsyncClient | None = None) -> None:
        self.project = project
        self.settings = settings or load_settings(project)
        self.store_url = project.audit_url or project.database_url
        self.lists = Lists()
        self.detector = Detector(self.settings.rules)
        self.cursor: int | None = None
        self.reader = ListsReader(self.settings.watch, project.database_url)
        self.raised = 0
        hook = self.settings.alerts.webhook
        self.sender = WebhookSender(hook, webhook_client) if hook else None
        self._stopping = asyncio.Event()

    @classmethod
    def from_project(cls, project: Project) -> DetectorService | None:
        """The service, or None when ``detect.enabled`` is false."""
        settings = load_settings(project)
        return cls(project, settings) if settings.service.enabled else None

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Hold the lock, catch up, tail the log; reconnect after any database failure."""
        pause = self.settings.service.poll_interval_s
        try:
            while not self._stopping.is_set():
                try:
                    async with await psycopg.AsyncConnection.connect(
                            self.store_url, autocommit=True,
                            application_name="querygate-detect") as conn:
                        if await self._locked(conn):
                            await self._follow(conn, pause)
                except (psycopg.Error, OSError) as exc:
                    log.warning("detector: %s; retrying", type(exc).__name__)
                await self._sleep(pause)
        finally:
            if self.sender is not None:
                await self.sender.close()

    async def _locked(self, conn: psycopg.AsyncConnection[Any]) -> bool:
        row = await (await conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))",
                                        (LOCK,))).fetchone()
        return bool(row and row[0])

    async def _follow(self, conn: psycopg.AsyncConnection[Any], pause: float) -> None:
        """Read the log in batches: straight on while a batch comes back full (a backlog),
        else wait ``pause`` so the next read finds many events, not one per round trip."""
        set_json_loads(orjson.loads, conn)
        await self.catch_up(conn)
        while not self._stopping.is_set():
            if await self.step(conn) < BATCH:
                await self._sleep(pause)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def catch_up(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Rebuild the baselines from the log up to the saved cursor (or the head), silently."""
        saved = await load_cursor(conn)
        if saved is not None and saved == self.cursor:
            return  # this process ran the detector up to here already
        if saved is None:
            row = await (await conn.execute(
                "SELECT coalesce(max(seq), 0) FROM querygate.audit_events")).fetchone()
            saved = int(row[0]) if row else 0
        await self.refresh_lists()
        self.detector = Detector(self.settings.rules, self.lists)
        days = self.settings.service.warmup_replay_days
        async with conn.transaction(), conn.cursor(name="querygate_detect_warmup") as cur:
            cur.itersize = BATCH
            await cur.execute(
                f"SELECT {EVENT_COLUMNS} FROM querygate.audit_events WHERE seq <= %s AND occurred_at "
                ">= (SELECT occurred_at FROM querygate.audit_events WHERE seq = %s) "
                "- make_interval(days => %s) ORDER BY seq", (saved, saved, days))
            async for row in cur:
                self.detector.feed(event_from_row(row))
        self.cursor = saved
        await save_cursor(conn, saved)

    async def step(self, conn: psycopg.AsyncConnection[Any]) -> int:
        """Read the events after the cursor, raise their alerts; return how many were read."""
        if self.cursor is None:
            await self.catch_up(conn)
        await self.refresh_lists()
        cur = await conn.execute(f"SELECT {EVENT_COLUMNS} FROM querygate.audit_events "
                                 "WHERE seq > %s ORDER BY seq LIMIT %s", (self.cursor, BATCH))
        rows = await cur.fetchall()
        for row in rows:
            for alert in self.detector.feed(event_from_row(row)):
                await self.raise_alert(conn, alert)
            self.cursor = int(row[0])
        if rows:
            await save_cursor(conn, self.cursor or 0)
        if self.sender is not None:
            await self.sender.deliver(conn)
        return len(rows)

    async def refresh_lists(self, *, force: bool = False) -> bool:
        """Re-read the watch list and relationships when due (``refresh_s``): files when they
        changed, queries every time. A failure keeps the lists as they were. True on change."""
        changed = await self.reader.refresh(force=force)
        self.lists = self.detector.lists = self.reader.lists
        return changed

    async def raise_alert(self, conn: psycopg.AsyncConnection[Any], alert: Alert) -> str | None:
        """Keep the alert; queue it for the webhook; suspend the person if the settings say so."""
        settings = self.settings.alerts
        hook = settings.webhook
        webhook = hook is not None and severity_rank(alert.severity) >= \
            severity_rank(hook.min_severity)
        alert_id = await save_alert(conn, alert, webhook=webhook)
        if alert_id is None:
            return None
        self.raised += 1
        log.warning("alert %s (%s, %s) for %s: %s", alert_id, alert.rule, alert.severity,
                    alert.actor_id, alert.summary)
        if self.suspends(alert) and await self.suspend(alert.actor_id, alert_id):
            await add_action(conn, alert_id, "suspended")
        return alert_id

    def suspends(self, alert: Alert) -> bool:
        settings = self.settings.alerts
        return settings.suspend_on is not None and alert.rule not in settings.suspend_except \
            and severity_rank(alert.severity) >= severity_rank(settings.suspend_on)

    async def suspend(self, actor_id: str, alert_id: str) -> bool:
        """Suspend an active person pending review: status, sessions and tokens, at once."""
        from querygate.identity import offboard

        async with await psycopg.AsyncConnection.connect(self.project.database_url,
                                                         autocommit=True) as conn:
            row = await (await conn.execute(
                "SELECT email FROM querygate.users WHERE id = %s AND status = 'active'",
                (actor_id,))).fetchone()
            if row is None:
                return False
            await offboard(conn, row[0], by=f"querygate detector (alert {alert_id})",
                           status="suspended")
        log.warning("suspended %s pending review of alert %s", row[0], alert_id)
        return True
