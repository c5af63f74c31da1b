"""Readiness: can this process serve a call now? Each part is checked for real, in parallel,
within a bound, and named in the answer when it is not ready.

- ``database``: a query connection runs a read of the identity directory (every call does).
- ``audit``: the audit writer runs and an audit connection reads the chain's head.
- ``signing_key``: the checkpoint key (when ``checkpoints.private_key`` is set) loads and signs.

Only exception class names are reported: a server's message may hold a value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from querygate.audit import CheckpointConfig, CheckpointError
from querygate.project import Project

NOT_CONFIGURED = "not configured"


@dataclass(frozen=True)
class Readiness:
    """Each part's state: ``ok``, ``not configured``, or what is wrong."""

    checks: dict[str, str]

    @property
    def ready(self) -> bool:
        return all(state in ("ok", NOT_CONFIGURED) for state in self.checks.values())

    def to_json(self) -> dict[str, object]:
        failing = [name for name, state in self.checks.items()
                   if state not in ("ok", NOT_CONFIGURED)]
        return {"status": "ready" if self.ready else "not ready", "checks": self.checks,
                **({"not_ready": failing} if failing else {})}


async def _read(pool: AsyncConnectionPool[Any], sql: str, timeout_s: float) -> str:
    try:
        async with pool.connection(timeout=timeout_s) as conn:
            await (await conn.execute(sql)).fetchall()
    except PoolTimeout:
        return "no connection within the timeout"
    except psycopg.Error as exc:
        return f"unusable ({type(exc).__name__})"
    except OSError as exc:
        return f"unreachable ({type(exc).__name__})"
    return "ok"


def _signing_key(project: Project) -> str:
    try:
        config = CheckpointConfig.from_project(project)
        if config.private_key is None:
            return NOT_CONFIGURED
        key = config.signing_key()
        key.public_key().verify(key.sign(b"querygate readiness"), b"querygate readiness")
    except CheckpointError as exc:
        return f"unusable: {exc.message}"
    return "ok"


async def check_readiness(project: Project, query_pool: AsyncConnectionPool[Any],
                audit_pool: AsyncConnectionPool[Any], writer_running: Callable[[], bool],
                *, timeout_s: float = 2.0) -> Readiness:
    """Every part checked at once, each within ``timeout_s``."""

    async def bounded(work: Awaitable[str]) -> str:
        try:
            return await asyncio.wait_for(work, timeout_s)
        except TimeoutError:
            return "no answer within the timeout"

    async def audit() -> str:
        if not writer_running():
            return "the audit writer is not running"
        return await _read(audit_pool, "SELECT seq FROM querygate.audit_head WHERE id = 1",
                           timeout_s)

    database, audit_state, key = await asyncio.gather(
        bounded(_read(query_pool, "SELECT 1 FROM querygate.users LIMIT 1", timeout_s)),
        bounded(audit()), bounded(asyncio.to_thread(_signing_key, project)))
    return Readiness({"database": database, "audit": audit_state, "signing_key": key})
