"""``alerts``: what the detector raised, listed, shown with their events, acknowledged."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Any

import click
import orjson
import psycopg

from querygate.audit import COLUMNS, StoredEvent
from querygate.cli._common import command_help, fail, load, project_option, with_connection
from querygate.detect import StoredAlert, acknowledge, add_action, get_alert, list_alerts
from querygate.project import Project

_json = click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")


@click.group(help=command_help("Alerts raised by the detector: list, show, acknowledge.",
                               "querygate alerts list --status open"))
def alerts() -> None: ...


def _store(project: Project) -> str:
    return project.audit_url or project.database_url


async def _actor_id(project: Project, user: str) -> str:
    """An email resolved to its actor id in the directory; anything else is taken as an id."""
    if "@" not in user:
        return user
    async with await psycopg.AsyncConnection.connect(project.database_url) as conn:
        row = await (await conn.execute("SELECT id FROM querygate.users WHERE email = %s",
                                        (user.lower(),))).fetchone()
    if row is None:
        fail(f"no user {user}; see `querygate users list`")
    return str(row[0]) if row else user


@alerts.command("list", help=command_help(
    "Alerts, newest first: id, when, who, rule, severity and what was seen.",
    "querygate alerts list --user alice@example.com --status all"))
@click.option("--status", type=click.Choice(["open", "acknowledged", "all"]), default="open",
              show_default=True)
@click.option("--user", help="Email or actor id.")
@click.option("--limit", default=100, show_default=True)
@_json
@project_option
def list_command(status: str, user: str | None, limit: int, as_json: bool,
                 project_dir: Path) -> None:
    project = load(project_dir)

    async def work(conn: psycopg.AsyncConnection[Any]) -> list[StoredAlert]:
        actor = await _actor_id(project, user) if user else None
        return await list_alerts(conn, status=None if status == "all" else status, actor=actor,
                                 limit=limit)

    found = with_connection(_store(project), work)
    if as_json:
        for stored in found:
            sys.stdout.write(orjson.dumps(stored.to_json()).decode() + "\n")
        return
    if not found:
        click.echo(f"no {'' if status == 'all' else status + ' '}alerts")
        return
    click.echo(f"{'id':<20} {'raised (UTC)':<19}  {'severity':<8} {'rule':<20} {'who':<22} summary")
    for stored in found:
        a = stored.alert
        click.echo(f"{stored.id:<20} {a.raised_at[:19].replace('T', ' '):<19}  {a.severity:<8} "
                   f"{a.rule:<20} {a.actor_id:<22} {a.summary}")


@alerts.command("show", help=command_help(
    "One alert: its evidence (features and baseline) and the audit events behind it.",
    "querygate alerts show alr_3f2a9c0d1e2b4a5c"))
@click.argument("alert_id")
@_json
@project_option
def show_command(alert_id: str, as_json: bool, project_dir: Path) -> None:
    project = load(project_dir)

    async def work(conn: psycopg.AsyncConnection[Any]) -> tuple[StoredAlert, list[StoredEvent]]:
        stored = await get_alert(conn, alert_id)
        seqs = [int(r) for r in stored.alert.events if r.isdigit()]
        cur = await conn.execute(f"SELECT {COLUMNS} FROM querygate.audit_events "
                                 "WHERE seq = ANY(%s) ORDER BY seq", (seqs,))
        return stored, [StoredEvent(row) for row in await cur.fetchall()]

    stored, events = with_connection(_store(project), work)
    if as_json:
        body = stored.to_json() | {"audit_events": [e.export() for e in events]}
        sys.stdout.write(orjson.dumps(body).decode() + "\n")
        return
    a = stored.alert
    click.echo(f"{stored.id}  {a.severity} {a.rule}  {stored.status}")
    click.echo(f"who: {a.actor_id}   raised at: {a.raised_at}")
    click.echo(a.summary)
    click.echo(f"features: {orjson.dumps(dict(a.features)).decode()}")
    click.echo(f"baseline: {orjson.dumps(dict(a.baseline)).decode()}")
    if stored.actions:
        click.echo(f"actions: {', '.join(stored.actions)}")
    if stored.acknowledged_by:
        click.echo(f"acknowledged by {stored.acknowledged_by}: {stored.note or '-'}")
    click.echo(f"events ({len(events)} of {len(a.events)} referenced):")
    for stored_event in events:
        e = stored_event.event
        subjects = ", ".join(f"{t}:{i}" for t, i in e.subjects[:5])
        click.echo(f"  {stored_event.seq:>8}  {e.occurred_at:%Y-%m-%d %H:%M:%S}  "
                   f"{e.function_name:<24} {e.decision:<8} {e.reason or '-':<16} {subjects}")


@alerts.command("ack", help=command_help(
    "Acknowledge an alert after review, with a note. --reinstate makes a person the detector "
    "suspended active again (they then need a new token).",
    "querygate alerts ack alr_3f2a9c0d1e2b4a5c --note 'ticket reassigned, checked with lead'"))
@click.argument("alert_id")
@click.option("--note", required=True, help="What the review found.")
@click.option("--by", "by", default=None, help="Who reviewed it (default: your login name).")
@click.option("--reinstate", is_flag=True, help="Set the suspended person active again.")
@project_option
def ack_command(alert_id: str, note: str, by: str | None, reinstate: bool,
                project_dir: Path) -> None:
    project = load(project_dir)
    reviewer = by or getpass.getuser()

    async def work(conn: psycopg.AsyncConnection[Any]) -> tuple[StoredAlert, bool]:
        stored = await acknowledge(conn, alert_id, by=reviewer, note=note)
        back = False
        if reinstate:
            back = await _reinstate(project, stored.alert.actor_id)
            if back:
                await add_action(conn, alert_id, f"reinstated by {reviewer}")
        return stored, back

    stored, back = with_connection(_store(project), work)
    click.echo(f"{stored.id}: {stored.status} by {stored.acknowledged_by}")
    if reinstate:
        click.echo(f"{stored.alert.actor_id}: " + (
            "active again; issue a new token with `querygate tokens issue EMAIL`" if back
            else "was not suspended; nothing changed"))


async def _reinstate(project: Project, actor_id: str) -> bool:
    async with await psycopg.AsyncConnection.connect(project.database_url,
                                                     autocommit=True) as conn:
        cur = await conn.execute("UPDATE querygate.users SET status = 'active', updated_at = now() "
                                 "WHERE id = %s AND status = 'suspended'", (actor_id,))
        return cur.rowcount > 0
