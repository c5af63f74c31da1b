"""Faults against a real `querygate serve` process: a statement timeout, a client that hangs
up, and SIGTERM in the middle of load."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import anyio
import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.demo_env import Demo, running_server_process
from tests.gateway.test_fail_closed import SLOW, project_with
from tests.ops.audit_checks import assert_chain_whole, assert_one_event_each, assert_verifies
from tests.ops.load import Load

pytestmark = pytest.mark.anyio

GATEWAY_BACKENDS = ("SELECT count(*) FILTER (WHERE state <> 'idle' OR xact_start IS NOT NULL), "
                    "count(*) > 0 FROM pg_stat_activity WHERE application_name = 'querygate' "
                    "AND datname = current_database()")


def counted(text: str, function: str, code: str) -> float:
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == "querygate_calls_total" and s.labels["function"] == function
               and s.labels["code"] == code)


def poll(conn: psycopg.Connection[tuple[object, ...]], sql: str, want: object,
         within_s: float = 10) -> object:
    deadline = time.monotonic() + within_s
    while True:
        row = conn.execute(sql).fetchone()
        if row == want or time.monotonic() > deadline:
            return row
        time.sleep(0.1)


async def slow(client: httpx.AsyncClient, url: str, token: str, seconds: float,
               timeout: float = 30) -> httpx.Response:
    return await client.post(f"{url}/v1/call/slow_lookup", json={"params": {"seconds": seconds}},
                             headers={"Authorization": f"Bearer {token}"}, timeout=timeout)


@pytest.mark.slow
async def test_timeout_hang_up_and_sigterm(demo: Demo, tmp_path: Path) -> None:
    project = project_with(demo, tmp_path, extra_sql=SLOW,
                           settings="  statement_timeout_ms: 3000\n  pool_max_size: 4")
    alice = demo.token("alice")
    with running_server_process(project) as proc, \
            psycopg.connect(demo.admin_url, autocommit=True) as db:
        async with httpx.AsyncClient() as client:
            # a statement timeout: 504, audited, and the connection comes back clean
            timed_out = await slow(client, proc.url, alice, 5)
            assert timed_out.status_code == 504
            assert timed_out.json()["error"]["code"] == "statement_timeout"
            assert poll(db, GATEWAY_BACKENDS, (0, True)) == (0, True)  # idle, no transaction
            assert (await slow(client, proc.url, alice, 0)).status_code == 200

            # a client that hangs up: its backend query is cancelled (long before it would end or
            # time out by itself), and the event says so
            with pytest.raises(httpx.ReadTimeout):
                await slow(client, proc.url, alice, 10, timeout=0.3)
            sleeping = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(%' " \
                       "AND state = 'active' AND pid <> pg_backend_pid()"
            assert poll(db, sleeping, (0,), within_s=1.5) == (0,)  # well before the 3 s timeout
            last = ("SELECT decision, error_code FROM querygate.audit_events WHERE "
                    "function_name = 'slow_lookup' ORDER BY seq DESC LIMIT 1")
            assert poll(db, last, ("error", "client_closed")) == ("error", "client_closed")
            scraped = (await client.get(f"{proc.url}/metrics")).text
            assert counted(scraped, "slow_lookup", "statement_timeout") == 1
            assert counted(scraped, "slow_lookup", "client_closed") == 1

            # SIGTERM under load: calls in flight finish, new ones find the door shut
            load = Load(client, alice, url=proc.url)
            async with load.running(callers=6):
                await load.until(lambda: load.count(200) >= 20)
                async with anyio.create_task_group() as group:
                    in_flight: list[httpx.Response] = []

                    async def one() -> None:
                        in_flight.append(await slow(client, proc.url, alice, 0.8))

                    for _ in range(3):
                        group.start_soon(one)
                    await anyio.sleep(0.3)
                    proc.send_signal(signal.SIGTERM)
                await load.until(lambda: len(load.failures) >= 6)
        output, _ = proc.communicate(timeout=30)
    # uvicorn shuts down cleanly, then ends by the signal it caught (systemd counts it a success)
    assert proc.returncode in (0, -signal.SIGTERM), output
    assert "Traceback" not in output and "ERROR" not in output, output
    assert [r.status_code for r in in_flight] == [200, 200, 200]
    assert set(load.statuses()) <= {200, 503}, load.statuses()
    assert_one_event_each(demo.admin_url, load.audit_ids() + [r.json()["audit_id"]
                                                              for r in in_flight])
    assert_chain_whole(demo.admin_url)
    assert_verifies(project)
