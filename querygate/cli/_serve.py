"""``serve``, ``demo``, ``init`` and ``setup``: running the gateway and preparing for it."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Coroutine
from pathlib import Path
from types import FrameType
from typing import Any

import click
import platformdirs
import psycopg
from psycopg.conninfo import conninfo_to_dict

from querygate.cli._common import command_help, fail, load, project_option, run
from querygate.cli._starter import write_starter
from querygate.cli._workers import serve_project, serve_workers, use_uvloop
from querygate.provision import DEFAULT_GATEWAY_ROLE, PARTS, setup_database, url_for

_host = click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")


@click.command(help=command_help("Run the gateway: the HTTP API in front of the database.",
                              "querygate serve --project ./prod --port 8080"))
@_host
@click.option("--port", default=8080, show_default=True)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes sharing the port (e.g. one per core).")
@project_option
def serve(host: str, port: int, workers: int, project_dir: Path) -> None:
    project = load(project_dir)
    if workers > 1:
        serve_workers(project, host, port, workers)
        return
    use_uvloop()
    _until_stopped(serve_project(project, host, port, banner=[]))


def _until_stopped(server: Coroutine[Any, Any, None]) -> None:
    """Serve until Ctrl+C or SIGTERM: a stop the user or a supervisor asked for ends with a
    line and exit 0, not "Aborted!" and exit 1. uvicorn shuts down cleanly, then re-raises the
    signal; a SIGTERM is then passed on as SIGINT, which asyncio turns into cancelling the
    server and a KeyboardInterrupt, as for Ctrl+C. So what the caller set up (the demo's
    embedded PostgreSQL) is stopped too, not left running."""
    def interrupt(signum: int, frame: FrameType | None) -> None:
        signal.raise_signal(signal.SIGINT)

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # started in the background by a shell without job control, which ignores SIGINT:
        # SIGTERM is passed on as SIGINT, so it must not be ignored
        signal.signal(signal.SIGINT, signal.default_int_handler)
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            run(server)
    finally:
        signal.signal(signal.SIGTERM, previous)
    click.echo("querygate stopped", err=True)


@click.command(help=command_help(
    "Start an embedded PostgreSQL with a sample fintech data set, the demo catalog and users, "
    "and serve the API. Prints each demo user's token and example calls.",
    "querygate demo --port 8080"))
@_host
@click.option("--port", default=8080, show_default=True)
@click.option("--database-url", default=None,
              help="Use this PostgreSQL server (a superuser URL) instead of the embedded one.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the demo keeps its database and project (default: your data folder).")
@click.option("--pg-port", default=6432, show_default=True,
              help="Port of the PostgreSQL front door (psql, drivers); 0 turns it off. "
                   "Served on loopback hosts only, where no TLS is needed.")
def demo(host: str, port: int, database_url: str | None, data_dir: Path | None,
         pg_port: int) -> None:
    from querygate.demo import banner, demo_tokens, prepare, stop_embedded
    from querygate.pgwire import PostgresConfig, is_loopback

    folder = data_dir or Path(platformdirs.user_data_dir("querygate")) / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    click.echo(f"preparing the demo in {folder} …")
    try:
        setup = prepare(folder, database_url)
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fail(f"the demo database could not be prepared: {first}. If {folder} holds a demo "
             "from an older querygate, remove that folder (or pass --data-dir) and retry")
        return
    tokens = run(demo_tokens(setup.gateway_url))
    project = load(setup.project_dir)
    postgres = PostgresConfig(host, pg_port) if pg_port and is_loopback(host) else None
    use_uvloop()
    try:
        _until_stopped(serve_project(project, host, port, postgres=postgres,
                                     banner=setup.notes + banner(setup.project_dir, host, port,
                                                                 tokens, postgres=postgres)))
    finally:
        if database_url is None:  # the embedded server this demo started stops with it
            stop_embedded(folder / "pg")
            click.echo(f"embedded PostgreSQL stopped; its data stays in {folder / 'pg'}",
                       err=True)


@click.command(help=command_help("Write a starter project into DIR.", "querygate init ./gateway"))
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def init(directory: Path) -> None:
    written = write_starter(directory)
    if not written:
        fail(f"{directory} already holds a querygate.yaml; nothing was written")
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(f"next: edit {directory / 'querygate.yaml'}, then "
               f"`querygate setup --project {directory} --admin-url …` and `querygate check`")


@click.command(help=command_help(
    "Create querygate's roles, schema and append-only audit tables, and grant the gateway's "
    "role what it needs (idempotent). Prints every grant it made.",
    "querygate setup --admin-url postgresql://postgres@db.internal/prod"))
@click.option("--admin-url", required=True, help="A URL with the right to create roles and schemas.")
@click.option("--gateway-role", default=None,
              help="The role the gateway connects as (default: the user in database.url).")
@click.option("--read-schema", "read_schemas", multiple=True, default=("public",),
              show_default=True, help="Schemas whose tables the gateway may read.")
@project_option
def setup(admin_url: str, gateway_role: str | None, read_schemas: tuple[str, ...],
          project_dir: Path) -> None:
    project = load(project_dir)
    role = gateway_role or str(conninfo_to_dict(project.database_url).get("user")
                               or DEFAULT_GATEWAY_ROLE)
    store = ("audit", "limits", "detect")  # the audit store also keeps counters and alerts
    parts: tuple[str, ...] = PARTS if not project.audit_url else ("identity",)
    try:
        done = setup_database(admin_url, gateway_role=role, parts=parts,
                              read_schemas=read_schemas)
        if project.audit_url:
            audit_db = conninfo_to_dict(project.audit_url).get("dbname")
            done += setup_database(url_for(admin_url, dbname=str(audit_db)) if audit_db
                                   else admin_url, gateway_role=role, parts=store,
                                   read_schemas=())
    except Exception as exc:  # psycopg errors here are the admin's own, shown as they are
        fail(f"setup failed: {exc}")
    for line in done:
        click.echo(line)
