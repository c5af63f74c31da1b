"""What must hold after any load or fault: one audit event per 2xx, a gap-free chain, verify."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import psycopg


def querygate(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "querygate", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "NO_COLOR": "1"},
                          check=False)


def assert_one_event_each(audit_url: str, audit_ids: Iterable[str]) -> None:
    """Every successful response's audit_id names exactly one ``allowed`` event."""
    wanted = sorted(set(audit_ids))
    with psycopg.connect(audit_url) as conn:
        rows = conn.execute("SELECT event_id::text, count(*), min(decision), max(decision) "
                            "FROM querygate.audit_events WHERE event_id = ANY(%s::uuid[]) "
                            "GROUP BY event_id", (wanted,)).fetchall()
    found = {event: (n, low, high) for event, n, low, high in rows}
    assert sorted(found) == wanted, f"{len(wanted) - len(found)} 2xx without an audit event"
    assert {v for v in found.values()} <= {(1, "allowed", "allowed")}


def assert_chain_whole(audit_url: str) -> int:
    """Sequence numbers 1..N with no gap, and the head at N; returns N."""
    with psycopg.connect(audit_url) as conn:
        row = conn.execute("SELECT count(*), min(seq), max(seq), count(DISTINCT seq), "
                           "(SELECT seq FROM querygate.audit_head WHERE id = 1) "
                           "FROM querygate.audit_events").fetchone()
    assert row is not None
    count, low, high, distinct, head = row
    assert (low, high, distinct, head) == (1, count, count, count), row
    return int(count)


def assert_verifies(project_dir: Path) -> None:
    verified = querygate("audit", "verify", "--project", str(project_dir))
    assert verified.returncode == 0, verified.stdout + verified.stderr
