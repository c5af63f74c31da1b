"""``users`` and ``tokens``: the identity directory from the command line."""

from __future__ import annotations

import datetime as dt
import getpass
import re
import sys
from pathlib import Path
from typing import Any

import click
import orjson
import psycopg

from querygate import identity
from querygate.cli._common import command_help, fail, load, project_option, run, with_connection
from querygate.project import Project


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


@users.command("offboard", help=command_help(
    "Offboard a person in one step: status offboarded, every API token revoked, sign-in "
    "sessions ended, JIT and break-glass grants revoked, their running queries cancelled. "
    "Records who did it and prints what they accessed in the last 14 days.",
    "querygate users offboard alex@example.com --by admin@example.com"))
@click.argument("email")
@click.option("--by", default=None, help="Who is offboarding (default: os:$USER).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@project_option
def users_offboard(email: str, by: str | None, as_json: bool, project_dir: Path) -> None:
    project = load(project_dir)
    actor = by or f"os:{getpass.getuser()}"
    done, report = run(_offboard(project, email, actor))
    if as_json:
        sys.stdout.write(orjson.dumps({"user": done.user.email, "user_id": done.user.id,
                                       "status": done.status, "by": done.by,
                                       "tokens_revoked": done.tokens_revoked,
                                       "grants_revoked": done.grants_revoked,
                                       "queries_cancelled": done.queries_cancelled,
                                       "access": report.to_json()}).decode() + "\n")
        return
    for line in offboarding_lines(done, report):
        click.echo(line)


async def _offboard(project: Project, email: str,
                    by: str) -> tuple[identity.Offboarding, identity.AccessReport]:
    async with await psycopg.AsyncConnection.connect(project.database_url, autocommit=True) as conn:
        done = await identity.offboard(conn, email, by=by)
    await identity.record(project, identity.identity_event(
        "offboard", actor_label=by, context={
            "user": done.user.id, "email": done.user.email, "tokens_revoked": str(done.tokens_revoked),
            "grants_revoked": str(done.grants_revoked),
            "queries_cancelled": str(done.queries_cancelled)}))
    url = project.audit_url or project.database_url
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        report = await identity.access_report(conn, done.user.id)
    return done, report


def offboarding_lines(done: identity.Offboarding, report: identity.AccessReport) -> list[str]:
    """The offboarding report a person reads: what was revoked, then what they accessed."""
    lines = [
        f"offboarded {done.user.email} ({done.user.id}) by {done.by}",
        f"  {done.tokens_revoked} API token(s) revoked, sign-in sessions ended, "
        f"{done.grants_revoked} access request(s) and grant(s) revoked, "
        f"{done.queries_cancelled} running query(ies) cancelled",
        f"access in the last {report.days} days (audit log): {report.calls} call(s), "
        f"{len(report.subjects)} data subject(s)",
    ]
    if report.functions:
        lines.append(f"  {'function':<28} {'calls':>5} {'allowed':>7} {'subjects':>8}  "
                     f"{'last (UTC)':<19}  fields not in clear")
    for name, use in sorted(report.functions.items(), key=lambda kv: -kv[1].calls):
        last = use.last.strftime("%Y-%m-%d %H:%M:%S") if use.last else ""
        lines.append(f"  {name:<28} {use.calls:>5} {use.allowed:>7} {len(use.subjects):>8}  "
                     f"{last:<19}  {', '.join(sorted(use.protected)) or '-'}")
    return lines


@click.group(help=command_help("API tokens.", "querygate tokens issue alex@example.com"))
def tokens() -> None: ...


_TTL = re.compile(r"(\d+)([dhm])")


@tokens.command("issue", help=command_help(
    "Print a new API token for a user (the last line of output). Only its hash is kept. "
    "With --on-behalf-of, a service's token acts for that person: it never gets more than "
    "their roles, and every audit event names them.",
    "querygate tokens issue alex@example.com --ttl 30d"))
@click.argument("email")
@click.option("--ttl", default=None, help="Lifetime such as 30d, 12h or 15m (default: no expiry).")
@click.option("--on-behalf-of", "on_behalf_of", default=None,
              help="The person (email) an agent's token acts for; EMAIL must be a service.")
@project_option
def tokens_issue(email: str, ttl: str | None, on_behalf_of: str | None, project_dir: Path) -> None:
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
        return await identity.issue_token(conn, email, ttl=lifetime, on_behalf_of=on_behalf_of)

    token, token_id = with_connection(project.database_url, work)
    acting = f", acting for {on_behalf_of.lower()}" if on_behalf_of else ""
    click.echo(f"token {token_id} for {email.lower()}{acting} (shown once; keep it secret):")
    click.echo(token)
