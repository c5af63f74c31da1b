"""A demo-like project folder, bench users and their tokens."""

from __future__ import annotations

import asyncio
import secrets
import shutil
from importlib import resources
from pathlib import Path

import psycopg

from querygate import identity
from querygate.demo import demo_tokens

__all__ = ["add_bench_user", "demo_tokens", "write_project"]


def write_project(folder: Path, gateway_url: str, *, queries: dict[str, str] | None = None,
                  config: str = "") -> Path:
    """``folder/project``: the packaged demo project with ``gateway_url`` as its database, a
    fresh secret key in a file, ``queries`` as extra files in ``queries/`` (name → SQL) and
    ``config`` appended to querygate.yaml (top-level sections, or lines under the demo's
    ``roles:``, which comes last)."""
    key_file = folder / "secret_key"
    key_file.write_text(secrets.token_urlsafe(32) + "\n", encoding="utf-8")
    key_file.chmod(0o600)
    target = folder / "project"
    if target.exists():
        shutil.rmtree(target)
    with resources.as_file(resources.files("querygate.demo").joinpath("project")) as source:
        shutil.copytree(source, target)
    quoted = "'" + gateway_url.replace("'", "''") + "'"
    yaml = (target / "querygate.yaml").read_text(encoding="utf-8")
    yaml = yaml.replace("url: $env:QUERYGATE_DATABASE_URL", f"url: {quoted}", 1)
    yaml = yaml.replace("secret_key: $env:QUERYGATE_SECRET_KEY", f"secret_key: $file:{key_file}", 1)
    (target / "querygate.yaml").write_text(yaml + config, encoding="utf-8")
    for name, text in (queries or {}).items():
        (target / "queries" / name).write_text(text, encoding="utf-8")
    return target


def add_bench_user(gateway_url: str, email: str, roles: list[str]) -> str:
    """Make ``email`` a user with ``roles`` (if not one yet) and issue it a fresh token."""

    async def run() -> str:
        async with await psycopg.AsyncConnection.connect(gateway_url, autocommit=True) as conn:
            if not any(u.email == email for u in await identity.list_users(conn)):
                await identity.add_user(conn, email, roles)
            token, _ = await identity.issue_token(conn, email)
            return token

    return asyncio.run(run())
