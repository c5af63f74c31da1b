"""``reports``: subject access, offboarding, access review and the SOC 2 evidence pack."""

from __future__ import annotations

import datetime as dt
import getpass
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click
import psycopg

from querygate import audit, reports
from querygate.cli._audit import checkpoint_config, reader_url
from querygate.cli._common import command_help, fail, load, parse_moment, project_option, run
from querygate.errors import QuerygateError
from querygate.project import Project

Builder = Callable[[psycopg.AsyncConnection[Any], psycopg.AsyncConnection[Any]],
                   Awaitable[reports.Report]]

_format = click.option("--format", "fmt", type=click.Choice(reports.FORMATS), default="html",
                       show_default=True, help="html (printable), csv or json.")
_out = click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                    help="Write to this file (default: standard output).")
_quick = click.option("--quick", is_flag=True, help="Verify only the events after the newest "
                      "signed checkpoint, not the whole log.")
_from = click.option("--from", "since", help="From this date or timestamp (inclusive).")
_to = click.option("--to", "until", help="Up to this date or timestamp (exclusive).")


def _who() -> str:
    try:
        return f"{getpass.getuser()} (querygate reports)"
    except OSError:
        return "querygate reports"


def _produce(project: Project, build: Builder, fmt: str, out: Path | None) -> None:
    """Open the audit (read) and identity connections, build the report, write it."""
    try:
        audit_url = reader_url(project)
    except QuerygateError as exc:
        fail(exc.message)
        raise
    identity_url = audit_url if not project.audit_url else project.database_url

    async def go() -> reports.Report:
        async with await psycopg.AsyncConnection.connect(audit_url, autocommit=True) as conn:
            if identity_url == audit_url:
                return await build(conn, conn)
            async with await psycopg.AsyncConnection.connect(identity_url,
                                                             autocommit=True) as other:
                return await build(conn, other)

    report = run(go())
    body = reports.render(report, fmt)
    if out is None:
        sys.stdout.buffer.write(body)
    else:
        out.write_bytes(body)
        click.echo(f"wrote {out} ({report.title}; {report.integrity.statement})", err=True)


@click.group("reports", help=command_help(
    "Compliance reports from the audit log, each with the log's verification: subject access "
    "(GDPR Art. 15), offboarding, access review and the SOC 2 evidence pack.",
    "querygate reports subject-access customer:42 --from 2026-03-01 --to 2026-04-01 "
    "--out dsar-42.html"))
def reports_group() -> None: ...


@reports_group.command("subject-access", help=command_help(
    "Every access to one data subject in a period: who, when, which function, why, and which "
    "fields they saw in clear or masked.",
    "querygate reports subject-access customer:42 --from 2026-01-01 --out dsar-42.html"))
@click.argument("subject")
@_from
@_to
@_format
@_out
@_quick
@project_option
def subject_access(subject: str, since: str | None, until: str | None, fmt: str,
                   out: Path | None, quick: bool, project_dir: Path) -> None:
    kind, sep, ident = subject.partition(":")
    if not sep or not kind or not ident:
        fail(f"{subject!r}: write the subject as TYPE:ID, e.g. customer:42")
    project = load(project_dir)
    config = checkpoint_config(project)
    start, end = parse_moment(since, option="--from"), parse_moment(until, option="--to")
    try:
        archives = audit.Archives.for_project(project)
    except QuerygateError as exc:
        fail(exc.message)
        raise

    async def build(conn: psycopg.AsyncConnection[Any], _: Any) -> reports.Report:
        return await reports.subject_access(conn, (kind, ident), start, end,
                                            catalog=project.catalog, config=config,
                                            generated_by=_who(), quick=quick,
                                            archives=archives)

    _produce(project, build, fmt, out)


@reports_group.command("offboarding", help=command_help(
    "Everything one person accessed in their last N days, with their account and tokens.",
    "querygate reports offboarding bob@example.com --days 30 --out bob.html"))
@click.argument("email")
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 3660))
@_format
@_out
@_quick
@project_option
def offboarding(email: str, days: int, fmt: str, out: Path | None, quick: bool,
                project_dir: Path) -> None:
    project = load(project_dir)
    config = checkpoint_config(project)

    async def build(conn: psycopg.AsyncConnection[Any],
                    identity: psycopg.AsyncConnection[Any]) -> reports.Report:
        return await reports.offboarding(conn, identity, email, days, config=config,
                                         generated_by=_who(), quick=quick)

    _produce(project, build, fmt, out)


def _period(since: str | None, until: str | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    return parse_moment(since, option="--from"), parse_moment(until, option="--to")


@reports_group.command("access-review", help=command_help(
    "Per person: the functions their roles grant against those they used in the period, so "
    "unused grants can be removed.",
    "querygate reports access-review --from 2026-01-01 --to 2026-04-01 --format csv"))
@_from
@_to
@_format
@_out
@_quick
@project_option
def access_review(since: str | None, until: str | None, fmt: str, out: Path | None,
                  quick: bool, project_dir: Path) -> None:
    _period_report(reports.access_review, since, until, fmt, out, quick, project_dir)


@reports_group.command("soc2", help=command_help(
    "The SOC 2 evidence pack for a period: people and roles, provisioning and removal, policy "
    "versions, refusals and alerts, and the log's verification with its checkpoints.",
    "querygate reports soc2 --from 2026-01-01 --to 2026-04-01 --out soc2-q1.html"))
@_from
@_to
@_format
@_out
@_quick
@project_option
def soc2(since: str | None, until: str | None, fmt: str, out: Path | None, quick: bool,
         project_dir: Path) -> None:
    _period_report(reports.soc2_pack, since, until, fmt, out, quick, project_dir)


def _period_report(make: Any, since: str | None, until: str | None, fmt: str, out: Path | None,
                   quick: bool, project_dir: Path) -> None:
    """A report over the whole directory for a period (access review, SOC 2 pack)."""
    project = load(project_dir)
    config = checkpoint_config(project)
    start, end = _period(since, until)

    async def build(conn: psycopg.AsyncConnection[Any],
                    identity: psycopg.AsyncConnection[Any]) -> reports.Report:
        report: reports.Report = await make(conn, identity, project, start, end, config=config,
                                            generated_by=_who(), quick=quick)
        return report

    _produce(project, build, fmt, out)
