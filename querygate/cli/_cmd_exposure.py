"""``exposure`` and ``audit reconcile``: prove the gateway is the only door to the data."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import orjson
import psycopg
from psycopg.conninfo import conninfo_to_dict

from querygate.cli._common import command_help, project_option
from querygate.errors import QuerygateError
from querygate.exposure import Accepted, ExposureReport, find_exposures, parse_allow
from querygate.exposure._report import login_seen
from querygate.project import CONFIG_NAME, Project, load_project

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
@project_option
def exposure(admin_url: str | None, gateway_role_name: str | None, as_json: bool,
             project_dir: Path) -> None:
    project = project_for(project_dir)
    try:
        allow = parse_allow(project.section("exposure"), str(project.root / CONFIG_NAME))
    except QuerygateError as exc:
        bad_input(exc.message)
    classified = classified_columns(project)
    role = gateway_role(project, gateway_role_name)
    with admin_connection(admin_url) as conn:
        report = guarded(lambda: find_exposures(conn, classified, gateway_role=role,
                                                allow=allow))
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
            echo(f"  {r.name}: LOGIN, {password}{until}{hba}; {login_seen(r)}")
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


COMMANDS = [exposure]
