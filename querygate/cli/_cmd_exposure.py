"""``exposure`` and ``audit reconcile``: prove the gateway is the only door to the data."""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
import orjson
import psycopg
from psycopg.conninfo import conninfo_to_dict

from querygate.cli._audit import audit_group, reader_url
from querygate.cli._common import command_help, project_option, with_connection
from querygate.detect import Alert, load_settings, save_alert, severity_rank
from querygate.detect._pgaudit import (
    STDERR_PREFIX,
    AuditRecord,
    LogFormatError,
    LogMessage,
    audit_records,
    last_seen,
    log_format,
)
from querygate.errors import QuerygateError
from querygate.exposure import (
    ADHOC,
    Accepted,
    ExposureReport,
    Functions,
    GatewayEvent,
    LiveSession,
    Reconciliation,
    find_exposures,
    live_bypasses,
    parse_allow,
    reconcile,
)
from querygate.exposure._report import describe_seen, login_seen
from querygate.project import CONFIG_NAME, Project, load_project
from querygate.purpose import Check, load_requirements

T = TypeVar("T")
BAD_INPUT = 2


def bad_input(message: str) -> NoReturn:
    """A mistake in what was asked for (URL, file, format): say what, exit 2."""
    click.echo(f"error: {message}", err=True)
    sys.exit(BAD_INPUT)


def project_for(project_dir: Path) -> Project:
    try:
        return load_project(project_dir)
    except QuerygateError as exc:
        bad_input(exc.message)


def gateway_role(project: Project, override: str | None) -> str:
    """The gateway's database role: --gateway-role, else the user in database.url."""
    if override:
        return override
    user = _conninfo(project.database_url, "database.url").get("user")
    if not user:
        bad_input("database.url names no user, so the gateway's role is unknown; "
                  "pass --gateway-role NAME")
    return str(user)


def _conninfo(url: str, what: str) -> dict[str, Any]:
    try:
        return conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        bad_input(f"{what} is not a PostgreSQL URL: {str(exc).strip().splitlines()[0]}")


@contextmanager
def admin_connection(url: str | None) -> Iterator[psycopg.Connection[Any]]:
    """A connection on the admin URL; a bad or unreachable URL is exit 2, never a traceback."""
    if not url:
        bad_input("--admin-url is required (or set QUERYGATE_ADMIN_URL), e.g. "
                  "--admin-url postgresql://postgres@db.internal/prod")
    _conninfo(url, "--admin-url")
    try:
        conn = psycopg.connect(url, connect_timeout=10)
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        bad_input(f"cannot connect with --admin-url: {first}")
    with conn:
        yield conn


def guarded(work: Callable[[], T]) -> T:
    """Database errors while reading the catalogs become one line and exit 2."""
    try:
        return work()
    except psycopg.Error as exc:
        state = getattr(exc, "sqlstate", None) or "unknown"
        bad_input(f"the database refused a catalog query (SQLSTATE {state}); use a "
                  "superuser or a role that may read pg_catalog")


def classified_columns(project: Project) -> dict[str, dict[str, tuple[str, ...]]]:
    found = {table: {c: tags for c, tags in entry.columns.items() if tags}
             for table, entry in project.classification.tables.items()}
    found = {t: cols for t, cols in found.items() if cols}
    if not found:
        bad_input(f"{project.root / CONFIG_NAME}: no column is classified, so nothing can be "
                  "exposed; add tags under classification:")
    return found


_admin = click.option("--admin-url", envvar="QUERYGATE_ADMIN_URL",
                      help="A superuser (or pg_read_all_settings) URL on the production "
                           "database; also QUERYGATE_ADMIN_URL.")
_zone_option = click.option(
    "--log-timezone", metavar="ZONE", help="The server's log_timezone (e.g. Europe/Berlin), "
    "when the log's times carry an abbreviation such as CET instead of UTC or an offset.")
_gateway = click.option("--gateway-role", "gateway_role_name",
                        help="The gateway's database role (default: the user in database.url).")


@click.command("exposure", help=command_help(
    "Every database role other than the gateway's that can read a classified column, and "
    "how: grants, column grants, PUBLIC, role memberships (inherited or by SET ROLE), "
    "pg_read_all_data, superuser, BYPASSRLS, ownership, views and SECURITY DEFINER functions "
    "owned by a role that reads it, and default privileges for future tables. Also which of "
    "those roles can log in, with or without a password, and who is connected now. Prints "
    "suggested REVOKE statements and never runs them. Exit 0 when every exposure is accepted "
    "under exposure.allow in querygate.yaml, 1 when any is not, 2 on bad input.",
    "querygate exposure --admin-url postgresql://postgres@db.internal/prod --project ."))
@_admin
@_gateway
@click.option("--json", "as_json", is_flag=True,
              help='One JSON object: {"exposures": [{"role", "column", "tags", "via", ...}]}.')
@click.option("--log", "logs", multiple=True, metavar="FILE",
              help="A server log (log_connections or pgAudit records) to say when each role "
                   "last connected; repeat for several.")
@_zone_option
@project_option
def exposure(admin_url: str | None, gateway_role_name: str | None, as_json: bool,
             logs: tuple[str, ...], log_timezone: str | None, project_dir: Path) -> None:
    project = project_for(project_dir)
    try:
        allow = parse_allow(project.section("exposure"), str(project.root / CONFIG_NAME))
    except QuerygateError as exc:
        bad_input(exc.message)
    classified = classified_columns(project)
    role = gateway_role(project, gateway_role_name)
    seen = describe_seen(_last_seen(logs, _zone(log_timezone))) if logs else None
    with admin_connection(admin_url) as conn:
        report = guarded(lambda: find_exposures(conn, classified, gateway_role=role,
                                                allow=allow, seen=seen))
    if report.missing and len(report.missing) == sum(len(c) for c in classified.values()):
        bad_input(f"none of the classified columns exists in database {report.database!r}; "
                  "is --admin-url pointing at the production database?")
    for column in report.missing:
        click.echo(f"warning: classified column {column} is not in database "
                   f"{report.database!r}", err=True)
    if as_json:
        sys.stdout.write(orjson.dumps(report.to_json()).decode() + "\n")
    else:
        _print_report(report, allow)
    sys.exit(1 if report.unaccepted else 0)


def _zone(name: str | None) -> dt.tzinfo | None:
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        bad_input(f"--log-timezone {name!r} is not a time zone; use the server's log_timezone, "
                  "e.g. Europe/Berlin")


def _last_seen(logs: tuple[str, ...], zone: dt.tzinfo | None) -> dict[str, LogMessage]:
    seen: dict[str, LogMessage] = {}
    for path in logs:
        try:
            with open(path, encoding="utf-8", errors="replace") as source:
                for role, msg in last_seen(source, zone).items():
                    if role not in seen or seen[role].at < msg.at:
                        seen[role] = msg
        except OSError as exc:
            bad_input(f"cannot read {path}: {exc.strerror or exc}")
        except LogFormatError as exc:
            bad_input(f"{path}: {exc}")
    return seen


def _print_report(report: ExposureReport, allow: tuple[Accepted, ...]) -> None:
    echo = click.echo
    echo(f"database {report.database}: {len(report.exposures)} exposure(s) of classified "
         f"columns, {len(report.unaccepted)} not accepted")
    if report.exposures:
        width = max(len(e.role) for e in report.exposures)
        cwidth = max(len(e.column) for e in report.exposures)
        echo("")
        echo(f"{'role':<{width}}  {'column':<{cwidth}}  {'status':<8}  via")
        for i, e in enumerate(report.exposures):
            status = "accepted" if i in report.accepted else "OPEN"
            echo(f"{e.role:<{width}}  {e.column:<{cwidth}}  {status:<8}  {e.via}"
                 f"  [{', '.join(e.tags)}]  {e.detail}")
    if report.roles:
        echo("")
        echo("roles that appear above, and how they log in:")
        for r in report.roles:
            if not r.login:
                echo(f"  {r.name}: cannot log in (NOLOGIN); reachable by SET ROLE or membership")
                continue
            password = {True: "has a password", False: "NO password", None: "password unknown "
                        "(needs a superuser URL)"}[r.password]
            hba = f"; pg_hba.conf: {', '.join(r.hba)}" if r.hba else ""
            until = f"; valid until {r.valid_until:%Y-%m-%d}" if r.valid_until else ""
            echo(f"  {r.name}: LOGIN, {password}{until}{hba}; {login_seen(r, report.seen)}")
    echo("")
    echo("not reported, by design: " + "; ".join(f"{k} ({v})" for k, v in report.excluded.items()))
    if allow:
        echo(f"exposure.allow: {len(allow)} accepted exposure(s) in querygate.yaml")
    statements = list(dict.fromkeys(e.revoke for e in report.unaccepted))
    if statements:
        echo("")
        echo("suggested statements (not run; review each, some close several paths):")
        for statement in statements:
            echo(f"  {statement}")


# -- audit reconcile ------------------------------------------------------------------------------

_EVENTS = """
SELECT seq::text, occurred_at, duration_us, function_name, actor_id,
       CASE WHEN function_name = %s THEN parameters ->> 'sql' END
FROM querygate.audit_events WHERE occurred_at BETWEEN %s AND %s ORDER BY occurred_at, seq
"""
_EVENT_MARGIN = dt.timedelta(minutes=10)  # longer than any statement the gateway lets run


def _read_log(path: str, zone: dt.tzinfo | None) -> tuple[list[AuditRecord], str]:
    """Every pgAudit record of the log file, and its format; exit 2 when unreadable."""
    try:
        with open(path, encoding="utf-8", errors="replace") as source:
            first = next((line for line in source if line.strip()), "")
            if not first:
                bad_input(f"{path}: the log is empty")
            fmt = log_format(first)
            source.seek(0)
            return list(audit_records(source, zone)), fmt
    except OSError as exc:
        bad_input(f"cannot read {path}: {exc.strerror or exc}")
    except LogFormatError as exc:
        bad_input(f"{path}: {exc}")


def _store_events(project: Project, records: list[AuditRecord], tolerance: dt.timedelta
                  ) -> list[GatewayEvent]:
    if not records:
        return []
    start = min(r.at for r in records) - tolerance - _EVENT_MARGIN
    end = max(r.at for r in records) + tolerance
    url = _store_url(project)
    _conninfo(url, "the audit store URL")
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


@audit_group.command("reconcile", help=command_help(
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
@_zone_option
@_admin
@_gateway
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
    records, fmt = _read_log(log, _zone(log_timezone))
    slack = dt.timedelta(seconds=tolerance)
    mine = [r for r in records if r.role == role]  # only the gateway's need its events
    events = _file_events(events_file) if events_file else _store_events(project, mine, slack)
    functions = Functions({n: f.exec_sql for n, f in project.catalog.items()},
                          {n: c.sql for n, c in _purpose_checks(project).items()})
    result = reconcile(records, classified=tables, gateway_role=role, functions=functions,
                       events=events, tolerance=slack)
    alerts = [f.alert() for f in result.findings]
    _finish([f.to_json() for f in result.findings], alerts, result.to_json() | {"format": fmt},
            as_json, alerts_to, record, project, lambda: _print_reconciliation(
                log, fmt, result, role))


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


COMMANDS = [exposure]
