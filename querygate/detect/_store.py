"""Alerts in PostgreSQL: raised once, listed, acknowledged, never deleted."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from querygate.detect._alert import Alert
from querygate.detect._event import iso_millis
from querygate.errors import NotFound

_COLUMNS = ("id, key, actor_id, rule, severity, raised_at, summary, details, status, created_at, "
            "acknowledged_at, acknowledged_by, note, actions, webhook_status, webhook_attempts, "
            "webhook_error")


@dataclass(frozen=True)
class StoredAlert:
    """An alert as the store keeps it: the alert, its id and what reviewers did with it."""

    id: str
    alert: Alert
    status: str
    created_at: dt.datetime
    acknowledged_at: dt.datetime | None
    acknowledged_by: str | None
    note: str | None
    actions: tuple[str, ...]
    webhook_status: str
    webhook_attempts: int
    webhook_error: str | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, **self.alert.to_json(), "status": self.status,
                "created_at": _iso(self.created_at), "acknowledged_at": _iso(self.acknowledged_at),
                "acknowledged_by": self.acknowledged_by, "note": self.note,
                "actions": list(self.actions),
                "webhook": {"status": self.webhook_status, "attempts": self.webhook_attempts,
                            "error": self.webhook_error}}


def _iso(moment: dt.datetime | None) -> str | None:
    return iso_millis(moment) if moment else None


def _stored(row: dict[str, Any]) -> StoredAlert:
    details = row["details"]
    alert = Alert(row["actor_id"], row["rule"], row["severity"], _iso(row["raised_at"]) or "",
                  row["summary"], row["key"], details.get("features", {}),
                  details.get("baseline", {}), tuple(details.get("events", [])),
                  tuple(details.get("subjects", [])))
    return StoredAlert(row["id"], alert, row["status"], row["created_at"], row["acknowledged_at"],
                       row["acknowledged_by"], row["note"], tuple(row["actions"]),
                       row["webhook_status"], row["webhook_attempts"], row["webhook_error"])


async def save_alert(conn: psycopg.AsyncConnection[Any], alert: Alert, *,
                     webhook: bool) -> str | None:
    """Store a new alert; None when an alert with its key exists (raising is idempotent)."""
    details = {"features": dict(alert.features), "baseline": dict(alert.baseline),
               "events": list(alert.events), "subjects": list(alert.subjects)}
    cur = await conn.execute(
        "INSERT INTO querygate.alerts (id, key, actor_id, rule, severity, raised_at, summary, "
        "details, webhook_status, webhook_next_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, "
        "CASE WHEN %s THEN now() END) ON CONFLICT (key) DO NOTHING RETURNING id",
        (f"alr_{secrets.token_hex(8)}", alert.key, alert.actor_id, alert.rule, alert.severity,
         alert.raised_at, alert.summary, Jsonb(details), "pending" if webhook else "none",
         webhook))
    row = await cur.fetchone()
    return str(row[0]) if row else None


async def list_alerts(conn: psycopg.AsyncConnection[Any], *, status: str | None = "open",
                      actor: str | None = None, limit: int = 100) -> list[StoredAlert]:
    """Alerts, newest first, optionally of one status and one actor id."""
    where: list[str] = []
    args: list[object] = []
    if status:
        where.append("status = %s")
        args.append(status)
    if actor:
        where.append("actor_id = %s")
        args.append(actor)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM querygate.alerts {clause} "
                          "ORDER BY raised_at DESC, created_at DESC LIMIT %s", [*args, limit])
        return [_stored(r) for r in await cur.fetchall()]


async def get_alert(conn: psycopg.AsyncConnection[Any], alert_id: str) -> StoredAlert:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM querygate.alerts WHERE id = %s", (alert_id,))
        row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no alert {alert_id[:40]!r}; `querygate alerts list` shows them")
    return _stored(row)


async def acknowledge(conn: psycopg.AsyncConnection[Any], alert_id: str, *, by: str,
                      note: str | None) -> StoredAlert:
    """Mark an alert reviewed, with who and why; acknowledging twice keeps the first."""
    await conn.execute(
        "UPDATE querygate.alerts SET status = 'acknowledged', acknowledged_at = now(), "
        "acknowledged_by = %s, note = %s WHERE id = %s AND status = 'open'",
        (by, note, alert_id))
    return await get_alert(conn, alert_id)


async def add_action(conn: psycopg.AsyncConnection[Any], alert_id: str, action: str) -> None:
    await conn.execute("UPDATE querygate.alerts SET actions = array_append(actions, %s) "
                       "WHERE id = %s", (action, alert_id))


async def due_webhooks(conn: psycopg.AsyncConnection[Any], limit: int = 20) -> list[StoredAlert]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM querygate.alerts WHERE webhook_status = "
                          "'pending' AND webhook_next_at <= now() ORDER BY webhook_next_at "
                          "LIMIT %s", (limit,))
        return [_stored(r) for r in await cur.fetchall()]


async def webhook_result(conn: psycopg.AsyncConnection[Any], alert_id: str, *, sent: bool,
                         error: str | None, retry_in_s: float | None) -> None:
    """Record one delivery attempt: sent, retried later, or given up (``retry_in_s`` None)."""
    status = "sent" if sent else ("pending" if retry_in_s is not None else "failed")
    await conn.execute(
        "UPDATE querygate.alerts SET webhook_status = %s, webhook_attempts = webhook_attempts + 1,"
        " webhook_error = %s, webhook_next_at = CASE WHEN %s::float8 IS NULL THEN NULL ELSE "
        "now() + make_interval(secs => %s::float8) END WHERE id = %s",
        (status, error, retry_in_s, retry_in_s, alert_id))


async def load_cursor(conn: psycopg.AsyncConnection[Any]) -> int | None:
    row = await (await conn.execute("SELECT seq FROM querygate.detect_cursor")).fetchone()
    return int(row[0]) if row else None


async def save_cursor(conn: psycopg.AsyncConnection[Any], seq: int) -> None:
    await conn.execute(
        "INSERT INTO querygate.detect_cursor (id, seq) VALUES (1, %s) ON CONFLICT (id) DO "
        "UPDATE SET seq = EXCLUDED.seq, updated_at = now()", (seq,))
