"""``querygate demo``: a real PostgreSQL with sample data, a project and three demo users."""

from __future__ import annotations

import asyncio
import secrets
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from querygate import identity
from querygate.demo._embedded import start_embedded
from querygate.demo._sample import load_sample
from querygate.lineage import Schema, load_schema
from querygate.lockfile import LOCK_NAME, write_lock
from querygate.provision import DEFAULT_GATEWAY_ROLE, setup_database, url_for

DEMO_DB = "querygate_demo"
DEMO_USERS = {
    "alice@example.com": ("support",),
    "bob@example.com": ("billing",),
    "carol@example.com": ("compliance",),
    "dave@example.com": ("admin",),
}


@dataclass(frozen=True)
class DemoSetup:
    project_dir: Path
    admin_url: str
    gateway_url: str
    notes: list[str]


def prepare(data_dir: Path, database_url: str | None = None,
            *, customers: int = 5000) -> DemoSetup:
    """Start (or reuse) the database, load the sample once, set up roles, write the project."""
    notes: list[str] = []
    server_url = database_url or start_embedded(data_dir / "pg")
    notes.append("PostgreSQL: " + ("the server at --database-url" if database_url
                                   else f"embedded, data in {data_dir / 'pg'}"))
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DEMO_DB,)).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DEMO_DB)))
    admin_url = url_for(server_url, dbname=DEMO_DB)
    with psycopg.connect(admin_url) as conn:
        loaded = conn.execute("SELECT to_regclass('public.customers')").fetchone()
        if loaded is None or loaded[0] is None:
            counts = load_sample(conn, customers=customers)
            notes.append("sample data loaded: " + ", ".join(f"{n} {t}" for t, n in counts.items()))
        else:
            notes.append("sample data already loaded (reused)")
    setup_database(admin_url, gateway_role=DEFAULT_GATEWAY_ROLE)
    gateway_url = url_for(admin_url, user=DEFAULT_GATEWAY_ROLE)
    project_dir = write_project(data_dir, gateway_url)
    _lock(project_dir, admin_url)
    return DemoSetup(project_dir, admin_url, gateway_url, notes)


def _lock(project_dir: Path, url: str) -> None:
    """Approve the demo schema as loaded (querygate.lock), unless already approved."""
    if (project_dir / LOCK_NAME).exists():
        return

    async def schema() -> Schema:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            return await load_schema(conn)

    write_lock(project_dir, asyncio.run(schema()))


def write_project(data_dir: Path, gateway_url: str) -> Path:
    """The packaged demo project, with this machine's database URL and a secret key file."""
    key_file = data_dir / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(32) + "\n", encoding="utf-8")
        key_file.chmod(0o600)
    target = data_dir / "project"
    source = resources.files("querygate.demo").joinpath("project")
    lock = target / LOCK_NAME
    approved = lock.read_bytes() if lock.exists() else None  # keep what was approved before
    with resources.as_file(source) as folder:
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(folder, target)
    if approved is not None:
        lock.write_bytes(approved)
    config = target / "querygate.yaml"
    text = config.read_text(encoding="utf-8")
    text = text.replace("url: $env:QUERYGATE_DATABASE_URL", f"url: {_quoted(gateway_url)}", 1)
    text = text.replace("secret_key: $env:QUERYGATE_SECRET_KEY", f"secret_key: $file:{key_file}", 1)
    config.write_text(text, encoding="utf-8")
    return target


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def demo_tokens(url: str) -> dict[str, str]:
    """Make sure the demo users exist and are active; issue each a fresh token."""
    tokens: dict[str, str] = {}
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        known = {u.email: u for u in await identity.list_users(conn)}
        for email, roles in DEMO_USERS.items():
            user: Any = known.get(email)
            if user is None:
                await identity.add_user(conn, email, roles)
            elif user.status != "active":
                await conn.execute("UPDATE querygate.users SET status = 'active' WHERE id = %s",
                                   (user.id,))
            tokens[email], _ = await identity.issue_token(conn, email)
    return tokens
