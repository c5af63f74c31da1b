"""Shared helpers of the front door tests: psql, extra users, audit events."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from typing import Any

import psycopg

from querygate import identity
from tests.demo_env import Demo
from tests.pgwire.conftest import Front

PSQL = shutil.which("psql")


def psql(front: Front, name: str, *commands: str, token: str | None = None,
         extra: tuple[str, ...] = (), options: dict[str, str] | None = None,
         timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """The machine's psql, one -c per command, with the front door's DSN (and ``options``)."""
    assert PSQL is not None, "psql is not installed (apt-get install postgresql-client)"
    args = [PSQL, "-X", "-v", "ON_ERROR_STOP=0", *extra,
            front.dsn(name, token=token, **(options or {}))]
    for command in commands:
        args += ["-c", command]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env,
                          check=False)


def new_user(demo: Demo, email: str, roles: tuple[str, ...]) -> str:
    """A user of its own for a test that revokes it; returns a fresh token."""

    async def make() -> str:
        async with await psycopg.AsyncConnection.connect(demo.gateway_url,
                                                         autocommit=True) as conn:
            known = {u.email for u in await identity.list_users(conn)}
            if email not in known:
                await identity.add_user(conn, email, roles)
            token, _ = await identity.issue_token(conn, email)
            return token

    return asyncio.run(make())


def revoke(demo: Demo, email: str) -> None:
    async def go() -> None:
        async with await psycopg.AsyncConnection.connect(demo.gateway_url,
                                                         autocommit=True) as conn:
            await identity.revoke_user(conn, email)

    asyncio.run(go())


def events(demo: Demo, where: str, *args: object) -> list[dict[str, Any]]:
    with psycopg.connect(demo.admin_url) as conn:
        rows = conn.execute(
            "SELECT seq, decision, actor_email, function_name, error_code, rows_returned, "
            "reason, context::text, client_addr::text FROM querygate.audit_events "
            f"WHERE {where} ORDER BY seq", args).fetchall()
    keys = ("seq", "decision", "actor_email", "function_name", "error_code", "rows_returned",
            "reason", "context", "client_addr")
    out = [dict(zip(keys, row, strict=True)) for row in rows]
    for event in out:
        event["context"] = json.loads(event["context"])
    return out


def last_seq(demo: Demo) -> int:
    with psycopg.connect(demo.admin_url) as conn:
        row = conn.execute("SELECT coalesce(max(seq), 0) FROM querygate.audit_events").fetchone()
    return int(row[0]) if row else 0
