"""``detect`` (backtest, run) and ``import pgaudit``: the detector offline and online."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import click
import orjson

from querygate.cli._common import command_help, fail, load, project_option, run
from querygate.cli._gc import tune_for_serving
from querygate.detect import (
    DetectConfig,
    DetectorService,
    EventError,
    Lists,
    PgauditImport,
    WatchSettings,
    backtest,
    import_pgaudit,
    lists_from_files,
    load_settings,
)
from querygate.errors import QuerygateError
from querygate.project import CONFIG_NAME


@click.group(help=command_help(
    "The insider detector: over exported events (backtest) or over the live audit log (run).",
    "querygate detect backtest events.jsonl > alerts.jsonl"))
def detect() -> None: ...


def _rules(project_dir: Path) -> tuple[DetectConfig, WatchSettings]:
    """The project's ``detect:`` settings when there is a project, else the defaults."""
    if not (project_dir / CONFIG_NAME).exists():
        return DetectConfig(), WatchSettings()
    settings = load_settings(load(project_dir))
    return settings.rules, settings.watch


def _lists(watch: WatchSettings, watch_file: Path | None, links_file: Path | None) -> Lists:
    """The watch list and relationships from the project's files and the command line."""
    for name, source in (("watch", watch.watch), ("relationships", watch.relationships)):
        if source.sql:
            click.echo(f"note: detect.{name}.sql is read online only; backtest reads files "
                       f"(--{name} FILE)", err=True)
    return lists_from_files(watch, watch_file, links_file)


def _lines(source: IO[bytes]) -> Iterator[bytes]:
    yield from source


@detect.command("backtest", help=command_help(
    "Run the detector over events in JSONL (as `querygate audit export` writes them, or "
    "converted from pgAudit) and print every alert it raises, one JSON object per line. "
    "Input needs occurred_at, actor_id, function_name, decision and subjects, in time "
    "order; reason, actor_roles, client_addr and context sharpen the rules. Uses the "
    "project's detect: settings when --project holds one. '-' reads standard input.",
    "querygate detect backtest events.jsonl > alerts.jsonl"))
@click.argument("events", type=click.File("rb"))
@click.option("--watch", "watch_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Watched subjects: subject[,why] a line (CSV) or JSON; added to the project's.")
@click.option("--relationships", "links_file",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Staff-subject links: actor,subject[,kind] a line (CSV) or JSON.")
@project_option
def backtest_command(events: IO[bytes], watch_file: Path | None, links_file: Path | None,
                     project_dir: Path) -> None:
    rules, watch = _rules(project_dir)
    counts: Counter[str] = Counter()
    out = sys.stdout.buffer
    try:
        lists = _lists(watch, watch_file, links_file)
    except QuerygateError as exc:
        fail(exc.message)
        raise
    try:
        for alert in backtest(_lines(events), rules, lists=lists):
            out.write(orjson.dumps(alert.to_json()) + b"\n")
            counts[alert.rule] += 1
    except EventError as exc:
        out.flush()
        fail(f"{events.name}: {exc}")
    out.flush()
    summary = ", ".join(f"{rule} {n}" for rule, n in sorted(counts.items())) or "none"
    click.echo(f"{sum(counts.values())} alert(s): {summary}", err=True)


@detect.command("run", help=command_help(
    "Run the online detector over this project's audit log until interrupted: it replays "
    "recent days to rebuild baselines, then follows new events, keeps alerts, sends the "
    "webhook and suspends if alerts.suspend_on says so. One detector runs at a time.",
    "querygate detect run --project ./prod"))
@project_option
def run_command(project_dir: Path) -> None:
    project = load(project_dir)
    try:
        service = DetectorService(project)
    except QuerygateError as exc:
        fail(exc.message)
        raise
    click.echo(f"detector following the audit log of {project.root} (Ctrl+C stops)", err=True)
    tune_for_serving()

    async def follow() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, service.stop)
        await service.run()

    run(follow())
    click.echo(f"stopped; {service.raised} new alert(s) raised", err=True)


@click.group("import", help=command_help(
    "Convert other audit logs into querygate's event form, for `detect backtest`.",
    "querygate import pgaudit postgresql.log > events.jsonl"))
def import_group() -> None: ...


def _mapping(pairs: tuple[str, ...], option: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            fail(f"{option} {pair!r}: write KEY=VALUE")
        found[key] = value
    return found


def _project_subjects(project_dir: Path) -> dict[str, str]:
    """Subject columns from the project's classification (a subject table's key is ``id``)."""
    if not (project_dir / CONFIG_NAME).exists():
        return {}
    project = load(project_dir)
    found: dict[str, str] = {}
    for table, entry in project.classification.tables.items():
        if entry.subject:
            found[f"{table}.id"] = entry.subject
        for kind, column in entry.subject_refs.items():
            found[f"{table}.{column}"] = kind
    return found


@import_group.command("pgaudit", help=command_help(
    "Read a PostgreSQL server log with pgAudit records and print audit events as JSONL. "
    "--map KEY=PERSON names the person behind a role, client host or application name; "
    "subject columns come from --subject schema.table.column=TYPE and from the project's "
    "classification. Statements are read for equality and IN predicates on those columns.",
    "querygate import pgaudit postgresql.log --map 10.0.0.5=alice@example.com > events.jsonl"))
@click.argument("logfile", type=click.File("r", encoding="utf-8", errors="replace"))
@click.option("--map", "maps", multiple=True, help="KEY=PERSON (role, host or application).")
@click.option("--subject", "subject_columns", multiple=True,
              help="schema.table.column=TYPE, a column holding subject ids.")
@project_option
def pgaudit_command(logfile: IO[str], maps: tuple[str, ...], subject_columns: tuple[str, ...],
                    project_dir: Path) -> None:
    subjects = _project_subjects(project_dir) | _mapping(subject_columns, "--subject")
    if not subjects:
        fail("no subject columns: pass --subject public.customers.id=customer, or --project "
             "with a classification")
    report = PgauditImport()
    out = sys.stdout.buffer
    for event in import_pgaudit(logfile, subjects=subjects, actors=_mapping(maps, "--map"),
                                report=report):
        out.write(orjson.dumps(event) + b"\n")
    out.flush()
    click.echo(f"{report.events} event(s), {report.skipped} other log record(s) skipped", err=True)
    if report.unmapped:
        click.echo("shared roles with no person (--map ROLE=PERSON, or by host/application): "
                   + ", ".join(sorted(report.unmapped)), err=True)
