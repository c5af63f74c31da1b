"""What ``exposure`` and ``audit reconcile`` share: the admin connection, the gateway's role,
the options, and bad input as exit 2 with the problem named, never a traceback."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
import psycopg
from psycopg.conninfo import conninfo_to_dict

from querygate.errors import QuerygateError
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
    user = conninfo(project.database_url, "database.url").get("user")
    if not user:
        bad_input("database.url names no user, so the gateway's role is unknown; "
                  "pass --gateway-role NAME")
    return str(user)


def conninfo(url: str, what: str) -> dict[str, Any]:
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
    conninfo(url, "--admin-url")
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


admin_option = click.option("--admin-url", envvar="QUERYGATE_ADMIN_URL",
                      help="A superuser (or pg_read_all_settings) URL on the production "
                           "database; also QUERYGATE_ADMIN_URL.")
zone_option = click.option(
    "--log-timezone", metavar="ZONE", help="The server's log_timezone (e.g. Europe/Berlin), "
    "when the log's times carry an abbreviation such as CET instead of UTC or an offset.")
gateway_option = click.option("--gateway-role", "gateway_role_name",
                        help="The gateway's database role (default: the user in database.url).")


def zone(name: str | None) -> dt.tzinfo | None:
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        bad_input(f"--log-timezone {name!r} is not a time zone; use the server's log_timezone, "
                  "e.g. Europe/Berlin")
