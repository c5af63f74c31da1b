"""``audit reconcile``: PostgreSQL's own log (pgAudit), or the sessions open now, against the
gateway's audit events."""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import orjson
import psycopg

from querygate.cli._audit import reader_url
from querygate.cli._common import command_help, project_option, with_connection
from querygate.cli._perimeter import (
    admin_connection,
    admin_option,
    bad_input,
    conninfo,
    gateway_option,
    gateway_role,
    guarded,
    project_for,
    zone,
    zone_option,
)
from querygate.detect import (
    STDERR_PREFIX,
    Alert,
    audit_records,
    load_settings,
    log_format,
    save_alert,
    severity_rank,
)
from querygate.errors import LogFormatError, QuerygateError
from querygate.exposure import (
    ADHOC,
    Functions,
    GatewayEvent,
    LiveSession,
    Reconciliation,
    live_bypasses,
    reconcile,
)
from querygate.project import CONFIG_NAME, Project
from querygate.purpose import Check, load_requirements

_EVENTS = """
SELECT seq::text, occurred_at, duration_us, function_name, actor_id,
       CASE WHEN function_name = %s THEN parameters ->> 'sql' END
FROM querygate.audit_events WHERE occurred_at BETWEEN %s AND %s ORDER BY occurred_at, seq
"""
_EVENT_MARGIN = dt.timedelta(minutes=10)  # longer than any statement the gateway lets run


@dataclass(frozen=True)
class LogScan:
    """A first pass over the log: its format, where it ended (a live log grows), and when the
    gateway's role appears in it (the audit events to fetch)."""

    path: str
    fmt: str
    size: int
    gateway_span: tuple[dt.datetime, dt.datetime] | None


def _lines(path: str, size: int | None = None) -> Iterator[str]:
    """The log's lines, up to ``size`` bytes when given; invalid UTF-8 is replaced."""
    with open(path, "rb") as source:
        read = 0
        for raw in source:
            if size is not None and read >= size:
                return
            read += len(raw)
            yield raw.decode("utf-8", errors="replace")


def _scan(path: str, zone_info: dt.tzinfo | None, role: str) -> LogScan:
    """Read the log once for its format, its size and the gateway's span; exit 2 when it cannot
    be read or is in no format PostgreSQL writes."""
    try:
        size = Path(path).stat().st_size
        first = next((line for line in _lines(path, size) if line.strip()), "")
        if not first:
            bad_input(f"{path}: the log is empty")
        fmt = log_format(first)
        start = end = None
        for rec in audit_records(_lines(path, size), zone_info):
            if rec.role == role:
                start = rec.at if start is None else min(start, rec.at)
                end = rec.at if end is None else max(end, rec.at)
    except OSError as exc:
        bad_input(f"cannot read {path}: {exc.strerror or exc}")
    except LogFormatError as exc:
        bad_input(f"{path}: {exc}")
    span = (start, end) if start is not None and end is not None else None
    return LogScan(path, fmt, size, span)


def _store_events(project: Project, span: tuple[dt.datetime, dt.datetime] | None,
                  tolerance: dt.timedelta) -> list[GatewayEvent]:
    if span is None:
        return []
    start, end = span[0] - tolerance - _EVENT_MARGIN, span[1] + tolerance
    url = _store_url(project)
    conninfo(url, "the audit store URL")
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            rows = conn.execute(_EVENTS, (ADHOC, start, end)).fetchall()
    except psycopg.errors.UndefinedTable:
        bad_input("the audit store has no querygate.audit_events: run `querygate setup` first")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        bad_input(f"cannot read the audit store: {first}")
    return [GatewayEvent(ref, at, dt.timedelta(microseconds=us), fn, actor, text)
            for ref, at, us, fn, actor, text in rows]


def _store_url(project: Project) -> str:
    try:
        return reader_url(project)
    except QuerygateError as exc:
        bad_input(exc.message)


def _file_events(path: Path) -> list[GatewayEvent]:
    """Events from an ``audit export`` JSONL file."""
    found: list[GatewayEvent] = []
    try:
        with path.open("rb") as source:
            for number, line in enumerate(source, 1):
                if not line.strip():
                    continue
                try:
                    item = orjson.loads(line)
                    at = dt.datetime.fromisoformat(str(item["occurred_at"]).replace("Z", "+00:00"))
                    found.append(GatewayEvent(
                        str(item.get("seq") or item.get("event_id") or number), at,
                        dt.timedelta(milliseconds=float(item.get("duration_ms") or 0)),
                        str(item["function_name"]), item.get("actor_id"),
                        (item.get("parameters") or {}).get("sql")))
                except (ValueError, KeyError, TypeError) as exc:
                    bad_input(f"{path}: line {number} is not an audit event ({exc})")
    except OSError as exc:
        bad_input(f"cannot read {path}: {exc.strerror or exc}")
    return found


def _write_alerts(alerts: list[Alert], target: str) -> None:
    lines = b"".join(orjson.dumps(a.to_json()) + b"\n" for a in alerts)
    if target == "-":
        sys.stdout.buffer.write(lines)
        sys.stdout.flush()
        return
    try:
        Path(target).write_bytes(lines)
    except OSError as exc:
        bad_input(f"cannot write {target}: {exc.strerror or exc}")


def _record_alerts(project: Project, alerts: list[Alert]) -> int:
    """Keep the alerts with the detector's; those at the webhook's severity are queued for it
    (the running detector delivers them)."""
    try:
        hook = load_settings(project).alerts.webhook
    except QuerygateError as exc:
        bad_input(exc.message)
    floor = severity_rank(hook.min_severity) if hook else None

    async def save(conn: psycopg.AsyncConnection[Any]) -> int:
        return sum([await save_alert(conn, a, webhook=floor is not None and severity_rank(
            a.severity) >= floor) is not None for a in alerts])

    return with_connection(project.database_url, save)


@click.command("reconcile", help=command_help(
    "Read PostgreSQL's own log (pgAudit records; stderr with log_line_prefix "
    f"'{STDERR_PREFIX}', csvlog or jsonlog) and report every READ or WRITE statement on a "
    "classified table that went around the gateway: by any other role (bypass.role), or by "
    "the gateway's role with no audit event of that function and actor in its time window "
    "(bypass.unaudited). --live looks at the sessions open now instead. Exit 0 when "
    "everything is accounted for, 1 on any finding, 2 on bad input. --alerts FILE (or -) "
    "writes the findings as alerts, one JSON object per line; --record keeps them with the "
    "detector's alerts.",
    "querygate audit reconcile /var/log/postgresql/postgresql-15-main.log --alerts alerts.jsonl"))
@click.argument("log", required=False)
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object: the counts, the findings and the alerts.")
@click.option("--alerts", "alerts_to", metavar="FILE",
              help="Write alerts as JSONL to FILE ('-': standard output, the report then goes "
                   "to standard error).")
@click.option("--record", is_flag=True, help="Also keep the alerts in querygate.alerts "
              "(shown by `querygate alerts` and the console).")
@click.option("--events", "events_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Compare with an `audit export` JSONL file instead of the audit store.")
@click.option("--tolerance", default=1.0, show_default=True, type=click.FloatRange(0, 60),
              help="Seconds of clock difference allowed between the gateway and the database.")
@click.option("--live", is_flag=True, help="Sessions open now (pg_stat_activity and pg_locks) "
              "on classified tables, not opened by the gateway; needs --admin-url.")
@zone_option
@admin_option
@gateway_option
@project_option
def reconcile_command(log: str | None, as_json: bool, alerts_to: str | None, record: bool,
                      events_file: Path | None, tolerance: float, live: bool,
                      log_timezone: str | None, admin_url: str | None,
                      gateway_role_name: str | None, project_dir: Path) -> None:
    if live == bool(log):
        bad_input("give a log file (querygate audit reconcile postgresql.log) or --live, "
                  "not both or neither")
    project = project_for(project_dir)
    role = gateway_role(project, gateway_role_name)
    tables = sorted(project.classification.tables)
    if not tables:
        bad_input(f"{project.root / CONFIG_NAME}: no table is classified, so nothing to reconcile")
    if live:
        with admin_connection(admin_url) as conn:
            sessions = guarded(lambda: live_bypasses(conn, tables, gateway_role=role))
        _finish([s.to_json() for s in sessions], [s.alert() for s in sessions],
                {"sessions": [s.to_json() for s in sessions]}, as_json, alerts_to, record,
                project, lambda: _print_live(sessions, role))
        return
    assert log is not None
    where = zone(log_timezone)
    scan = _scan(log, where, role)
    slack = dt.timedelta(seconds=tolerance)
    events = _file_events(events_file) if events_file else \
        _store_events(project, scan.gateway_span, slack)
    functions = Functions({n: f.exec_sql for n, f in project.catalog.items()},
                          {n: c.sql for n, c in _purpose_checks(project).items()})
    try:  # the second pass stops where the first did
        result = reconcile(audit_records(_lines(log, scan.size), where), classified=tables,
                           gateway_role=role, functions=functions, events=events,
                           tolerance=slack)
    except (OSError, LogFormatError) as exc:
        bad_input(f"{log} changed while it was read: {exc}")
    alerts = [f.alert() for f in result.findings]
    _finish([f.to_json() for f in result.findings], alerts,
            result.to_json() | {"format": scan.fmt}, as_json, alerts_to, record, project,
            lambda: _print_reconciliation(log, scan.fmt, result, role))


def _purpose_checks(project: Project) -> dict[str, Check]:
    try:
        return load_requirements(project)[0]
    except QuerygateError as exc:
        bad_input(exc.message)


def _finish(findings: list[dict[str, Any]], alerts: list[Alert], report: dict[str, Any],
            as_json: bool, alerts_to: str | None, record: bool, project: Project,
            show: Callable[[], None]) -> None:
    if record and alerts:
        kept = _record_alerts(project, alerts)
        click.echo(f"recorded {kept} new alert(s) in querygate.alerts", err=True)
    if alerts_to:
        _write_alerts(alerts, alerts_to)
    if as_json:
        report["alerts"] = [a.to_json() for a in alerts]
        out = sys.stderr if alerts_to == "-" else sys.stdout
        out.write(orjson.dumps(report).decode() + "\n")
    elif alerts_to == "-":
        with contextlib.redirect_stdout(sys.stderr):
            show()
    else:
        show()
    sys.exit(1 if findings else 0)


def _print_reconciliation(log: str, fmt: str, result: Reconciliation, role: str) -> None:
    echo = click.echo
    echo(f"{log} ({fmt}): {result.records} pgAudit record(s), {result.statements} READ/WRITE "
         f"statement(s) on classified tables")
    echo(f"gateway role {role}: {result.matched} matched to audit events "
         f"({result.events} event(s) compared), {result.purpose} purpose check(s) inside "
         f"audited calls, {result.checks} startup check(s) (describe, no rows read)")
    if result.parsed:
        echo(f"note: {result.parsed} statement(s) had no object names; their tables were read "
             "from the SQL text (set pgaudit.log_relation = on)")
    if not result.findings:
        echo("ok: every statement on a classified table went through the gateway")
        return
    echo(f"{len(result.findings)} finding(s):")
    for f in result.findings:
        rec = f.statement.first
        text = " ".join(rec.statement.split())
        when = f"{rec.at:%Y-%m-%d %H:%M:%S.%f}"[:-3]
        echo(f"  {f.rule:<16} {when}  {rec.role}@{rec.database}"
             f"  client={rec.client or '-'} app={rec.application or '-'}  {rec.command} "
             f"{', '.join(sorted(f.statement.tables))}")
        echo(f"      {text[:160]}{'…' if len(text) > 160 else ''}")


def _print_live(sessions: list[LiveSession], role: str) -> None:
    if not sessions:
        click.echo(f"ok: no open session holds a classified table, other than the gateway's "
                   f"({role})")
        return
    click.echo(f"{len(sessions)} open session(s) on classified tables not opened by the gateway:")
    for s in sessions:
        since = f"{s.holding_since:%Y-%m-%d %H:%M:%S}"
        click.echo(f"  {s.rule:<16} pid {s.pid}  {s.role}  app={s.application or '-'} "
                   f"client={s.client or 'local'}  {s.state} since {since}  "
                   f"{', '.join(s.tables)}")
