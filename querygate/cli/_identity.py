"""``users`` and ``tokens``: the identity directory from the command line."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import click
import psycopg

from querygate import identity
from querygate.cli._common import command_help, fail, load, project_option, with_connection


@click.group(help=command_help("People and services who may call functions.",
                            "querygate users add alex@example.com --role support"))
def users() -> None: ...


@users.command("add", help=command_help(
    "Add a person (or, with --service, a service) holding one or more roles.",
    "querygate users add alex@example.com --role support --role billing"))
@click.argument("email")
@click.option("--role", "roles", multiple=True, required=True, help="A role from querygate.yaml.")
@click.option("--service", is_flag=True, help="A non-human identity (CI job, agent).")
@project_option
def users_add(email: str, roles: tuple[str, ...], service: bool, project_dir: Path) -> None:
    project = load(project_dir)
    unknown = [r for r in roles if r not in project.roles]
    if unknown:
        fail(f"role {unknown[0]!r} is not defined in querygate.yaml "
             f"(roles: {', '.join(project.roles)})")

    async def work(conn: psycopg.AsyncConnection[Any]) -> identity.User:
        return await identity.add_user(conn, email, roles,
                                       kind="service" if service else "person")

    user = with_connection(project.database_url, work)
    click.echo(f"added {user.email} ({user.id}) with roles {', '.join(user.roles)}")
    click.echo(f"next: querygate tokens issue {user.email}")


@users.command("list", help=command_help("List everyone in the directory.", "querygate users list"))
@project_option
def users_list(project_dir: Path) -> None:
    project = load(project_dir)
    found = with_connection(project.database_url, identity.list_users)
    click.echo(f"{'email':<32} {'id':<22} {'kind':<8} {'status':<11} roles")
    for u in found:
        click.echo(f"{u.email:<32} {u.id:<22} {u.kind:<8} {u.status:<11} {', '.join(u.roles)}")


@users.command("revoke", help=command_help(
    "Offboard a person: every token stops working on the very next call.",
    "querygate users revoke bob@example.com"))
@click.argument("email")
@project_option
def users_revoke(email: str, project_dir: Path) -> None:
    project = load(project_dir)

    async def work(conn: psycopg.AsyncConnection[Any]) -> tuple[identity.User, int]:
        async with conn.transaction():
            return await identity.revoke_user(conn, email)

    user, tokens = with_connection(project.database_url, work)
    click.echo(f"revoked {user.email} ({user.id}): status offboarded, {tokens} token(s) revoked")


@click.group(help=command_help("API tokens.", "querygate tokens issue alex@example.com"))
def tokens() -> None: ...


_TTL = re.compile(r"(\d+)([dhm])")


@tokens.command("issue", help=command_help(
    "Print a new API token for a user (the last line of output). Only its hash is kept.",
    "querygate tokens issue alex@example.com --ttl 30d"))
@click.argument("email")
@click.option("--ttl", default=None, help="Lifetime such as 30d, 12h or 15m (default: no expiry).")
@project_option
def tokens_issue(email: str, ttl: str | None, project_dir: Path) -> None:
    project = load(project_dir)
    lifetime = None
    if ttl is not None:
        match = _TTL.fullmatch(ttl)
        if match is None:
            fail(f"--ttl {ttl!r}: use a number and d, h or m, e.g. 30d")
            return
        unit = {"d": "days", "h": "hours", "m": "minutes"}[match.group(2)]
        lifetime = dt.timedelta(**{unit: int(match.group(1))})

    async def work(conn: psycopg.AsyncConnection[Any]) -> tuple[str, str]:
        return await identity.issue_token(conn, email, ttl=lifetime)

    token, token_id = with_connection(project.database_url, work)
    click.echo(f"token {token_id} for {email.lower()} (shown once; keep it secret):")
    click.echo(token)
