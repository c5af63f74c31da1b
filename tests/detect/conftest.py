"""A database with the identity, audit and detect parts, and a project folder pointing at it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from querygate import audit, execute
from querygate.project import Project, load_project
from querygate.provision import DEFAULT_GATEWAY_ROLE, setup_database, url_for
from querygate.settings import Settings

CONFIG = """
database:
  url: '{url}'
secret_key: 0123456789abcdef0123456789abcdef
detect:
  warmup_days: 3
  warmup_replay_days: 60
  poll_interval_s: 0.05
alerts:
  reviewers: [compliance]
  webhook: {{url: 'http://hooks.example.test/T0/B0', backoff_s: 0.01, max_attempts: 2,
            min_severity: medium}}
  suspend_on: high
"""


@dataclass(frozen=True)
class Store:
    admin_url: str
    gateway_url: str
    project: Project


@pytest.fixture
def store(fresh_db: str, tmp_path: Path) -> Store:
    setup_database(fresh_db, parts=("identity", "audit", "detect"), read_schemas=())
    gateway_url = url_for(fresh_db, user=DEFAULT_GATEWAY_ROLE)
    folder = tmp_path / "project"
    (folder / "queries").mkdir(parents=True)
    (folder / "querygate.yaml").write_text(CONFIG.format(url=gateway_url))
    return Store(fresh_db, gateway_url, load_project(folder))


def audit_event(line: dict[str, Any]) -> audit.AuditEvent:
    """An office line (the export form) as the gateway would have logged it."""
    when = dt.datetime.fromisoformat(line["occurred_at"])
    return audit.AuditEvent(
        occurred_at=when, function_name=line["function_name"], decision=line["decision"],
        actor_id=line["actor_id"], actor_roles=tuple(line.get("actor_roles") or ()),
        reason=line.get("reason"), client_addr=line.get("client_addr"),
        subjects=tuple((s["type"], s["id"]) for s in line["subjects"]),
        context=line.get("context") or {})


async def append_all(url: str, lines: list[dict[str, Any]]) -> None:
    pool: AsyncConnectionPool[Any] = execute.audit_pool(url, Settings())
    await pool.open(wait=True)
    try:
        for line in lines:
            await audit.append(pool, audit_event(line), timeout_s=5)
    finally:
        await pool.close()
