"""``audit``: answers from the log, its export, and its verification."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson
import psycopg

from querygate import audit
from querygate.audit import StoredEvent
from querygate.cli._common import (
    command_help,
    fail,
    load,
    parse_moment,
    project_option,
    with_connection,
)

_json = click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
_from = click.option("--from", "since", help="From this date or timestamp (inclusive).")
_to = click.option("--to", "until", help="Up to this date or timestamp (exclusive).")
_limit = click.option("--limit", default=100, show_default=True, help="Most events shown.")


@click.group(help=command_help("Search, export and verify the audit log.",
                            "querygate audit subject customer:42 --from 2026-03-01"))
def audit_group() -> None: ...


def _store_url(project_dir: Path) -> str:
    project = load(project_dir)
    return project.audit_url or project.database_url


def _fields(event: StoredEvent) -> str:
    clear = [c for c, d in event.event.fields.items() if d == "allow"]
    other = [f"{c}={d}" for c, d in event.event.fields.items() if d != "allow"]
    parts = []
    if clear:
        parts.append("clear: " + ", ".join(clear))
    if other:
        parts.append(", ".join(other))
    return "; ".join(parts) or "-"


def _print(events: list[StoredEvent], as_json: bool) -> None:
    if as_json:
        for e in events:
            sys.stdout.write(orjson.dumps(e.export()).decode() + "\n")
        return
    if not events:
        click.echo("no events match")
        return
    click.echo(f"{'seq':>6}  {'when (UTC)':<19}  {'who':<24} {'function':<26} {'decision':<8} "
               f"{'rows':>5}  reason / fields")
    for e in events:
        ev = e.event
        when = ev.occurred_at.strftime("%Y-%m-%d %H:%M:%S")
        outcome = ev.decision if not ev.error_code else f"{ev.decision}:{ev.error_code}"
        click.echo(f"{e.seq:>6}  {when:<19}  {(ev.actor_email or '-'):<24} "
                   f"{ev.function_name:<26} {outcome:<8} {ev.rows_returned:>5}  "
                   f"{ev.reason or '-'} | {_fields(e)}")


@audit_group.command("search", help=command_help(
    "Events by person, function and time, newest first.",
    "querygate audit search --user alice@example.com --from 2026-03-01 --to 2026-04-01"))
@click.option("--user", help="Email or actor id.")
@click.option("--function", "function", help="Function name.")
@click.option("--decision", type=click.Choice(["allowed", "denied", "error"]))
@_from
@_to
@_limit
@_json
@project_option
def search(user: str | None, function: str | None, decision: str | None, since: str | None,
           until: str | None, limit: int, as_json: bool, project_dir: Path) -> None:
    query = audit.Query(user=user, function=function, decision=decision, limit=limit,
                        since=parse_moment(since, option="--from"),
                        until=parse_moment(until, option="--to"))

    async def work(conn: psycopg.AsyncConnection[Any]) -> list[StoredEvent]:
        return await audit.search(conn, query)

    _print(with_connection(_store_url(project_dir), work), as_json)


@audit_group.command("subject", help=command_help(
    "Every access to one data subject: who, when, which function, which fields in clear.",
    "querygate audit subject customer:42 --from 2026-03-01 --to 2026-04-01"))
@click.argument("subject")
@_from
@_to
@_limit
@_json
@project_option
def subject(subject: str, since: str | None, until: str | None, limit: int, as_json: bool,
            project_dir: Path) -> None:
    kind, sep, ident = subject.partition(":")
    if not sep or not kind or not ident:
        fail(f"{subject!r}: write the subject as TYPE:ID, e.g. customer:42")
    query = audit.Query(subject=(kind, ident), limit=limit,
                        since=parse_moment(since, option="--from"),
                        until=parse_moment(until, option="--to"))

    async def work(conn: psycopg.AsyncConnection[Any]) -> list[StoredEvent]:
        return await audit.search(conn, query)

    _print(with_connection(_store_url(project_dir), work), as_json)


@audit_group.command("verify", help=command_help(
    "Recompute the hash chain; exit 1 and name the first bad event if the log was altered.",
    "querygate audit verify"))
@project_option
def verify(project_dir: Path) -> None:
    result = with_connection(_store_url(project_dir), audit.verify)
    if result.ok:
        click.echo(f"ok: {result.checked} events verified; head seq {result.head_seq} "
                   f"hash {result.head_hash}")
        return
    click.echo(f"FAILED at event seq {result.first_bad_seq}: {result.problem}")
    click.echo(f"{result.checked} events verified before it; last good seq {result.head_seq}")
    sys.exit(1)


@audit_group.command("export", help=command_help(
    "Every event, in sequence order, as JSONL (the backtest input).",
    "querygate audit export > events.jsonl"))
@click.option("--format", "fmt", type=click.Choice(["jsonl"]), default="jsonl",
              show_default=True)
@project_option
def export(fmt: str, project_dir: Path) -> None:
    async def work(conn: psycopg.AsyncConnection[Any]) -> int:
        count = 0
        async for event in audit.export(conn):
            sys.stdout.write(orjson.dumps(event).decode() + "\n")
            count += 1
        return count

    count = with_connection(_store_url(project_dir), work)
    click.echo(f"exported {count} events", err=True)
