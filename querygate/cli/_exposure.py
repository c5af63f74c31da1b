"""``exposure``: every other way into the classified columns (and, registered here, ``audit
reconcile``: every statement that went around the gateway)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click
import orjson

from querygate.cli._common import command_help, project_option
from querygate.cli._perimeter import (
    admin_connection,
    admin_option,
    bad_input,
    classified_columns,
    gateway_option,
    gateway_role,
    guarded,
    project_for,
    zone,
    zone_option,
)
from querygate.detect import LogMessage, last_seen
from querygate.errors import LogFormatError, QuerygateError
from querygate.exposure import (
    Accepted,
    ExposureReport,
    describe_seen,
    find_exposures,
    login_seen,
    parse_allow,
)
from querygate.project import CONFIG_NAME


@click.command("exposure", help=command_help(
    "Every database role other than the gateway's that can read a classified column, and "
    "how: grants, column grants, PUBLIC, role memberships (inherited or by SET ROLE), "
    "pg_read_all_data, superuser, BYPASSRLS, ownership, views and SECURITY DEFINER functions "
    "owned by a role that reads it, and default privileges for future tables. Also which of "
    "those roles can log in, with or without a password, and who is connected now. Prints "
    "suggested REVOKE statements and never runs them. Exit 0 when every exposure is accepted "
    "under exposure.allow in querygate.yaml, 1 when any is not, 2 on bad input.",
    "querygate exposure --admin-url postgresql://postgres@db.internal/prod --project ."))
@admin_option
@gateway_option
@click.option("--json", "as_json", is_flag=True,
              help='One JSON object: {"exposures": [{"role", "column", "tags", "via", ...}]}.')
@click.option("--log", "logs", multiple=True, metavar="FILE",
              help="A server log (log_connections or pgAudit records) to say when each role "
                   "last connected; repeat for several.")
@zone_option
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
    seen = describe_seen(_last_seen(logs, zone(log_timezone))) if logs else None
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
    echo("not reported, by design:")
    for role, why in report.excluded.items():
        echo(f"  {role}: {why}")
    if allow:
        echo(f"exposure.allow: {len(allow)} accepted exposure(s) in querygate.yaml")
    statements = list(dict.fromkeys(e.revoke for e in report.unaccepted))
    if statements:
        echo("")
        echo("suggested statements (not run; review each, some close several paths):")
        for statement in statements:
            echo(f"  {statement}")
