"""``check``: the project loaded against the live schema, as a reviewer reads it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson
import psycopg

from querygate.check import has_errors, purpose_problems, render, report, section_problems
from querygate.cli._common import command_help, load, project_option, with_connection
from querygate.gateway import analyse_catalog
from querygate.lockfile import write_lock


@click.command(help=command_help(
    "Load the project against the live schema; print each function's output columns with "
    "their sources and tags, and the role × function × column decisions. Also validates "
    "purpose:, limits:, detect: and alerts: as serve reads them, and prepares each purpose "
    "check's SQL. Exit 1 on any problem.",
    "querygate check --json > plan.json"))
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object.")
@click.option("--lock", "write", is_flag=True,
              help="Approve the schema as it is now: write querygate.lock (new columns are "
                   "'unclassified' until the next --lock).")
@project_option
def check(as_json: bool, write: bool, project_dir: Path) -> None:
    project = load(project_dir)
    problems = section_problems(project)

    async def work(conn: psycopg.AsyncConnection[Any]) -> dict[str, Any]:
        analysis = await analyse_catalog(conn, project.catalog, project.classification,
                                         project.root)
        if write:
            path = write_lock(project.root, analysis.schema)
            click.echo(f"wrote {path}", err=True)
            analysis = await analyse_catalog(conn, project.catalog, project.classification,
                                             project.root)
        return report(project, analysis, problems + await purpose_problems(conn, project))

    result = with_connection(project.database_url, work)
    if as_json:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        click.echo(render(result))
    if has_errors(result):
        click.echo("check failed: see the problems above", err=True)
        sys.exit(1)
