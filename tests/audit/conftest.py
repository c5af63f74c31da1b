"""A fresh database with querygate set up, helpers to append, tamper, and sign checkpoints."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from querygate import audit
from querygate.audit import AuditEvent, CheckpointConfig
from querygate.audit import _content as content
from querygate.execute import audit_pool
from querygate.provision import DEFAULT_GATEWAY_ROLE, setup_database, url_for
from querygate.settings import Settings


@dataclass(frozen=True)
class Log:
    admin_url: str
    gateway_url: str
    config: CheckpointConfig


def event(n: int, **changes: Any) -> AuditEvent:
    base: dict[str, Any] = dict(
        occurred_at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC) + dt.timedelta(hours=n),
        function_name="get_customer_by_id", decision="allowed", actor_id="usr_1",
        actor_email="alex@example.com", actor_roles=("support",), parameters={"customer_id": n},
        reason=f"TICKET-{n}", rows_returned=1, fields={"iban": "mask.last4", "email": "allow"},
        subjects=(("customer", str(n % 7)),), client_addr="127.0.0.1", duration_us=3100,
        policy_version="pv:test",
    )
    base.update(changes)
    return AuditEvent(**base)


async def open_pool(url: str, size: int = 4) -> AsyncConnectionPool[Any]:
    pool = audit_pool(url, Settings(audit_pool_max_size=size, audit_timeout_ms=10000))
    await pool.open(wait=True)
    return pool


async def append(url: str, events: list[AuditEvent], concurrency: int = 1) -> list[audit.Receipt]:
    pool = await open_pool(url, size=concurrency)
    try:
        gate = asyncio.Semaphore(concurrency)

        async def one(e: AuditEvent) -> audit.Receipt:
            async with gate:
                return await audit.append(pool, e, timeout_s=20)

        return await asyncio.gather(*(one(e) for e in events))
    finally:
        await pool.close()


async def verify(log: Log, *, from_checkpoint: bool = False,
                 config: CheckpointConfig | None = None, deep: bool = False) -> audit.Verification:
    async with await psycopg.AsyncConnection.connect(log.gateway_url, autocommit=True) as conn:
        return await audit.verify_log(conn, config or log.config, from_checkpoint=from_checkpoint,
                                      deep=deep)


async def checkpoint(log: Log) -> audit.Checkpoint:
    async with await psycopg.AsyncConnection.connect(log.gateway_url, autocommit=True) as conn:
        return await audit.write_checkpoint(conn, log.config.signing_key(), log.config.folder)


# What a superuser must do first to edit a field: the content constraint refuses any row whose
# columns do not hash to its content_hash, triggers or not.
UNGUARD = "ALTER TABLE querygate.audit_events DROP CONSTRAINT audit_events_content"


def guard(url: str) -> None:
    """Put the content constraint back, as ``querygate setup`` does."""
    with psycopg.connect(url) as conn:
        conn.execute("SET ROLE querygate_owner")
        content.install(conn)
        conn.commit()
        content.validate(conn)


def tamper(url: str, *statements: str) -> None:
    """A superuser who switches the append-only triggers off and edits the tables directly."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE querygate.audit_events DISABLE TRIGGER USER")
        try:
            for statement in statements:
                conn.execute(statement.encode())
        finally:
            for trigger in ("audit_events_chain", "audit_events_no_change"):
                conn.execute(f"ALTER TABLE querygate.audit_events ENABLE ALWAYS TRIGGER {trigger}")


@pytest.fixture
def log(fresh_db: str, tmp_path: Path) -> Log:
    setup_database(fresh_db)
    key = tmp_path / "keys" / "checkpoint.pem"
    audit.generate_key(key)
    return Log(fresh_db, url_for(fresh_db, user=DEFAULT_GATEWAY_ROLE),
               CheckpointConfig(folder=tmp_path / "checkpoints", private_key=key))
