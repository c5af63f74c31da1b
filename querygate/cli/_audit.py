"""``audit``: answers from the log, its export, its verification and its signed checkpoints."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import Any, TextIO

import click
import orjson
import psycopg

from querygate import audit
from querygate.audit import (
    CheckpointConfig,
    ParquetWriter,
    S3Sink,
    StoredEvent,
    Verification,
    merged,
    verify_export,
)
from querygate.cli._common import (
    command_help,
    fail,
    load,
    parse_moment,
    project_option,
    with_connection,
)
from querygate.errors import QuerygateError
from querygate.project import Project, resolve_secret

_json = click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
_from = click.option("--from", "since", help="From this date or timestamp (inclusive).")
_to = click.option("--to", "until", help="Up to this date or timestamp (exclusive).")
_limit = click.option("--limit", default=100, show_default=True, help="Most events shown.")


@click.group("audit", help=command_help("Search, export and verify the audit log.",
                            "querygate audit subject customer:42 --from 2026-03-01"))
def audit_group() -> None: ...


def reader_url(project: Project) -> str:
    """Where ``audit`` and ``reports`` read: ``audit.reader_url`` (a login role holding
    querygate_auditor), else the audit store, else the database."""
    reader = resolve_secret(project.section("audit").get("reader_url"), what="audit.reader_url",
                            path=str(project.root / "querygate.yaml"), line=None)
    return reader or project.audit_url or project.database_url


def _store_url(project_dir: Path) -> str:
    project = load(project_dir)
    try:
        return reader_url(project)
    except QuerygateError as exc:
        fail(exc.message)
        raise


def checkpoint_config(project: Project) -> CheckpointConfig:
    try:
        return CheckpointConfig.from_project(project)
    except QuerygateError as exc:
        fail(exc.message)
        raise


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
    click.echo(f"{'seq':>8}  {'when (UTC)':<19}  {'who':<24} {'function':<26} {'decision':<8} "
               f"{'rows':>5}  reason / fields")
    for e in events:
        ev = e.event
        when = ev.occurred_at.strftime("%Y-%m-%d %H:%M:%S")
        outcome = ev.decision if not ev.error_code else f"{ev.decision}:{ev.error_code}"
        click.echo(f"{e.seq:>8}  {when:<19}  {(ev.actor_email or '-'):<24} "
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

    archives = _archives(project_dir)

    async def work(conn: psycopg.AsyncConnection[Any]) -> list[StoredEvent]:
        return await audit.search_everywhere(conn, query, archives)

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

    archives = _archives(project_dir)

    async def work(conn: psycopg.AsyncConnection[Any]) -> list[StoredEvent]:
        return await audit.search_everywhere(conn, query, archives)

    _print(with_connection(_store_url(project_dir), work), as_json)


def _archives(project_dir: Path) -> audit.Archives | None:
    """The archives that ``audit.archives`` names, to be verified before they answer."""
    project = load(project_dir)
    try:
        return audit.Archives.for_project(project)
    except QuerygateError as exc:
        fail(exc.message)
        raise


def _walk_line(result: Verification) -> str:
    if result.walk == "fast":
        return ("walk: fast; the content constraint holds on every partition, so the stored "
                "hashes vouch for each event's fields")
    if result.structure is None:
        return "walk: deep (--deep); every event's fields rendered and hashed"
    return (f"walk: deep; every event's fields rendered and hashed, because {result.structure} "
            "(`querygate setup` puts the constraint back once the log verifies)")


def _report(result: Verification, what: str) -> None:
    if result.ok:
        after = (f" after the checkpoint at seq {result.start_seq}" if what == "events"
                 else f" (the file starts after seq {result.start_seq})")
        since = after if result.start_seq else ""
        click.echo(f"ok: {result.checked} {what} verified{since}; head seq {result.head_seq} "
                   f"hash {result.head_hash}")
        click.echo(f"checkpoints: {result.checkpoints} signed checkpoint(s) matched")
    elif result.first_bad_seq is None:
        click.echo(f"FAILED: {result.problem}")
    else:
        click.echo(f"FAILED at event seq {result.first_bad_seq}: {result.problem}")
    if not result.ok:
        click.echo(f"{result.checked} events verified before it; last good seq {result.head_seq}")
    if result.walk:
        click.echo(_walk_line(result))
    if not result.ok:
        sys.exit(1)


@audit_group.command("verify", help=command_help(
    "Check every signed checkpoint, then recompute the hash chain against them; exit 1 and name "
    "the first bad event if the log was altered, truncated or restored. With --export, verify "
    "exported JSONL files instead of the database. While the store's content constraint holds, "
    "the walk reads the stored hashes (fast); otherwise, or with --deep, it hashes every event's "
    "content as well.",
    "querygate audit verify"))
@click.option("--from-checkpoint", is_flag=True,
              help="Walk only the events after the newest checkpoint the log still matches.")
@click.option("--deep", is_flag=True,
              help="Render and hash every event's content even where the content constraint "
                   "vouches for it.")
@click.option("--export", "files", multiple=True, type=click.Path(exists=True, dir_okay=False,
              path_type=Path), help="An export file to verify, JSONL or Parquet (repeat for "
              "several months; the two forms mix).")
@project_option
def verify(from_checkpoint: bool, deep: bool, files: tuple[Path, ...], project_dir: Path) -> None:
    project = load(project_dir)
    config = checkpoint_config(project)
    if files:
        _report(_verify_files(config, files), "exported events")
        return

    async def work(conn: psycopg.AsyncConnection[Any]) -> Verification:
        return await audit.verify_log(conn, config, from_checkpoint=from_checkpoint, deep=deep)

    _report(with_connection(_store_url(project_dir), work), "events")


def _verify_files(config: CheckpointConfig, files: tuple[Path, ...]) -> Verification:
    """Exported files against the checkpoints (folder and S3) whose signatures hold."""
    try:
        public = config.verify_key()
        signed = [c for c in config.stored() if public is not None and audit.signature_ok(c, public)]
        return verify_export(merged(list(files)), signed)
    except QuerygateError as exc:
        fail(exc.message)
        raise
    except ValueError as exc:
        fail(str(exc))
        raise


@audit_group.command("checkpoint", help=command_help(
    "Sign the log's current head (size and hash) with the checkpoint key and write it to the "
    "checkpoint folder, outside the database, and to the S3 bucket when checkpoints.s3 is set.",
    "querygate audit checkpoint"))
@project_option
def checkpoint(project_dir: Path) -> None:
    project = load(project_dir)
    config = checkpoint_config(project)
    try:
        key, sink = config.signing_key(), config.open_sink()
    except QuerygateError as exc:
        fail(exc.message)
        raise

    async def work(conn: psycopg.AsyncConnection[Any]) -> audit.Checkpoint:
        return await audit.write_checkpoint(conn, key, config.folder)

    written = with_connection(_store_url(project_dir), work)
    click.echo(f"checkpoint: {written.size} events, head {written.head_hash}, "
               f"signed by key {written.key_id}")
    click.echo(f"written to {written.path}")
    if sink is not None:
        _upload(sink, written)


def _upload(sink: S3Sink, written: audit.Checkpoint) -> None:
    try:
        stored = sink.put(written)
    except QuerygateError as exc:
        fail(f"{exc.message} (the file was written; run `querygate audit checkpoint` again)")
        raise
    click.echo(f"uploaded to {stored.url} (version {stored.version_id}), locked "
               f"{stored.mode} until {stored.retain_until:%Y-%m-%d %H:%M:%S}Z")


@audit_group.command("keygen", help=command_help(
    "Create the Ed25519 key that signs checkpoints (never overwrites one) and print its public "
    "key for checkpoints.public_key.",
    "querygate audit keygen --out /etc/querygate/checkpoint.pem"))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the private key (mode 0600). Keep it off the database host.")
def keygen(out: Path) -> None:
    try:
        public = audit.generate_key(out)
    except QuerygateError as exc:
        fail(exc.message)
        raise
    click.echo(f"wrote the private key to {out}")
    click.echo("add to querygate.yaml:")
    click.echo("checkpoints:")
    click.echo(f"  private_key: {out}")
    click.echo(f"  public_key: {audit.public_key_text(public)}")


@audit_group.command("export", help=command_help(
    "Events in sequence order as JSONL (the backtest input) or Parquet, all of them or one "
    "period's. Exported files verify on their own with `audit verify --export`.",
    "querygate audit export --from 2026-03-01 --to 2026-04-01 > 2026-03.jsonl"))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "parquet"]), default="jsonl",
              show_default=True, help="parquet needs --out.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of standard output (required for parquet).")
@_from
@_to
@project_option
def export(fmt: str, out: Path | None, since: str | None, until: str | None,
           project_dir: Path) -> None:
    start = parse_moment(since, option="--from")
    end = parse_moment(until, option="--to")
    if fmt == "parquet" and out is None:
        fail("--format parquet writes a file: add --out FILE (e.g. --out 2026-03.parquet)")
    events = partial(audit.export, since=start, until=end)
    url = _store_url(project_dir)
    if fmt == "parquet" and out is not None:
        count, groups = with_connection(url, partial(_to_parquet, events, out))
        click.echo(f"exported {count} events to {out} ({groups} row group"
                   f"{'' if groups == 1 else 's'})", err=True)
        return
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(out.open("w", encoding="utf-8")) if out else sys.stdout
        count = with_connection(url, partial(_to_jsonl, events, sink))
    click.echo(f"exported {count} events" + (f" to {out}" if out else ""), err=True)


_Events = Callable[[psycopg.AsyncConnection[Any]], AsyncIterator[dict[str, Any]]]


async def _to_jsonl(events: _Events, sink: TextIO, conn: psycopg.AsyncConnection[Any]) -> int:
    count = 0
    async for event in events(conn):
        sink.write(orjson.dumps(event).decode() + "\n")
        count += 1
    return count


async def _to_parquet(events: _Events, out: Path,
                      conn: psycopg.AsyncConnection[Any]) -> tuple[int, int]:
    try:
        with ParquetWriter(out) as writer:
            async for event in events(conn):
                writer.add(event)
    except (ValueError, OSError) as exc:
        fail(f"cannot write {out}: {exc}")
    return writer.count, writer.groups
