"""One run against a real server process: `querygate serve`, then `querygate call` over TCP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.demo_env import Demo, running_server, running_server_process


def querygate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "querygate", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"}, check=False)


@pytest.fixture(params=[1, 2], ids=["one-process", "two-workers"])
def server(demo: Demo, request: pytest.FixtureRequest) -> Iterator[str]:
    with running_server(demo.project_dir, "--workers", str(request.param)) as url:
        yield url


def test_call_through_a_real_server_then_revoke(demo: Demo, server: str) -> None:
    alice = demo.token("alice")
    with httpx.Client(base_url=server) as client:  # new connections: spread over the workers
        for _ in range(10):
            response = client.post("/v1/call/get_customer_by_id",
                                   json={"params": {"customer_id": 7}},
                                   headers={"Authorization": f"Bearer {alice}",
                                            "Connection": "close"})
            assert response.status_code == 200
    done = querygate("call", "get_customer_by_id", "--param", "customer_id=42", "--reason",
                     "TICKET-1042", "--url", server, "--token", alice)
    assert done.returncode == 0, done.stderr
    assert "iban" in done.stdout and "****4242" in done.stdout
    assert "ssn" not in done.stdout.splitlines()[0]
    assert "iban: mask.last4" in done.stderr

    revoke = querygate("users", "revoke", "alice@example.com", "--project", str(demo.project_dir))
    assert revoke.returncode == 0, revoke.stderr
    try:
        refused = querygate("call", "get_customer_by_id", "--param", "customer_id=42",
                            "--url", server, "--token", alice)
        assert refused.returncode == 1
        assert "401 not_authenticated" in refused.stderr
        for _ in range(6):  # every worker refuses the revoked token
            response = httpx.post(f"{server}/v1/call/get_customer_by_id",
                                  json={"params": {"customer_id": 7}},
                                  headers={"Authorization": f"Bearer {alice}"})
            assert response.status_code == 401
        verified = querygate("audit", "verify", "--project", str(demo.project_dir))
        assert verified.returncode == 0, verified.stdout
    finally:
        with psycopg.connect(demo.gateway_url, autocommit=True) as conn:
            conn.execute("UPDATE querygate.users SET status = 'active' "
                         "WHERE email = 'alice@example.com'")
            conn.execute("UPDATE querygate.tokens t SET revoked_at = NULL FROM querygate.users u "
                         "WHERE u.id = t.user_id AND u.email = 'alice@example.com'")


def test_a_client_that_disconnects_cancels_its_query(demo: Demo, tmp_path: Path) -> None:
    from tests.gateway.test_fail_closed import SLOW, project_with

    project = project_with(demo, tmp_path, extra_sql=SLOW)
    with running_server(project) as url:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/v1/call/slow_lookup", json={"params": {"seconds": 30}},
                       headers={"Authorization": f"Bearer {demo.token('alice')}"}, timeout=1.0)
        sleeping: tuple[int] | None = (1,)
        with psycopg.connect(demo.admin_url, autocommit=True) as conn:
            for _ in range(50):
                sleeping = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                                        "'%pg_sleep%' AND state = 'active' AND pid <> "
                                        "pg_backend_pid()").fetchone()
                if sleeping == (0,):
                    break
                time.sleep(0.1)
            assert sleeping == (0,)
            for _ in range(50):
                row = conn.execute("SELECT decision, error_code FROM querygate.audit_events "
                                   "WHERE function_name = 'slow_lookup' ORDER BY seq DESC "
                                   "LIMIT 1").fetchone()
                if row is not None:
                    break
                time.sleep(0.1)
        assert row == ("error", "client_closed")


def test_ctrl_c_stops_the_server_cleanly(demo: Demo) -> None:
    """Ctrl+C is how the banner says to stop: a clean exit with a line, not "Aborted!"."""
    with running_server_process(demo.project_dir) as proc:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert "querygate stopped" in output and "Aborted" not in output
