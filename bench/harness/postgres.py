"""A PostgreSQL to measure against: the embedded one in a temporary folder, or one you name."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
from psycopg import sql

from querygate.demo import load_sample, start_embedded, stop_embedded
from querygate.provision import setup_database, url_for


@contextlib.contextmanager
def postgres(folder: Path, url: str | None = None) -> Iterator[str]:
    """A superuser URL: ``url`` as given, or the embedded server started in ``folder/pg`` (and
    stopped when the block ends)."""
    if url is not None:
        yield url
        return
    server = start_embedded(folder / "pg")
    try:
        yield server
    finally:
        stop_embedded(folder / "pg")


def fresh_database(server: str, name: str) -> str:
    """Drop and create database ``name`` on ``server``; its superuser URL."""
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return url_for(server, dbname=name)


def demo_database(server: str, name: str, customers: int) -> str:
    """A fresh database with the demo's sample tables (``customers`` people) and querygate's
    schema; its superuser URL."""
    admin = fresh_database(server, name)
    with psycopg.connect(admin) as conn:
        load_sample(conn, customers=customers)
    setup_database(admin)
    return admin


def postmaster_pid(admin: str) -> int | None:
    """The server's main process, when it runs on this machine and we may see it; else None."""
    with psycopg.connect(admin, autocommit=True) as conn:  # the backend lives while it is open
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        try:
            return psutil.Process(int(row[0]) if row else 0).ppid()
        except (psutil.Error, ValueError):
            return None
