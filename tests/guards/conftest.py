"""Demo project copies with reasons, purposes or limits switched on, served in process."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import yaml

from tests.demo_env import Demo

Config = dict[str, Any]


def project_copy(demo: Demo, folder: Path, edit: Callable[[Config], None]) -> Path:
    """The demo project with ``edit`` applied to its querygate.yaml."""
    target = folder / f"project{len(list(folder.glob('project*')))}"
    shutil.copytree(demo.project_dir, target)
    path = target / "querygate.yaml"
    config = yaml.safe_load(path.read_text())
    edit(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return target


def latest_event(demo: Demo, email: str) -> tuple[str, str | None, dict[str, str]]:
    """(decision, error code, context) of a person's latest audit event."""
    with psycopg.connect(demo.admin_url) as conn:
        row = conn.execute("SELECT decision, error_code, context FROM querygate.audit_events "
                           "WHERE actor_email = %s ORDER BY seq DESC LIMIT 1", (email,)).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def open_tickets(demo: Demo, email: str) -> list[int]:
    with psycopg.connect(demo.admin_url) as conn:
        return [r[0] for r in conn.execute(
            "SELECT DISTINCT customer_id FROM support_tickets WHERE assignee_email = %s "
            "AND status IN ('open', 'pending') ORDER BY 1", (email,))]


def unrelated(demo: Demo, email: str, count: int) -> list[int]:
    """Customers with no open ticket assigned to ``email``: browsing, not work."""
    with psycopg.connect(demo.admin_url) as conn:
        return [r[0] for r in conn.execute(
            "SELECT id FROM customers c WHERE NOT EXISTS (SELECT 1 FROM support_tickets t "
            "WHERE t.customer_id = c.id AND t.assignee_email = %s AND t.status IN "
            "('open', 'pending')) ORDER BY id LIMIT %s", (email, count))]
