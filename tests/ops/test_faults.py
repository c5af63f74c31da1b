"""Faults injected for real under load: the data server restarted, the audit store cut and
stalled. After each, every 2xx has exactly one audit event, the chain verifies, and the
gateway recovered by itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import psycopg
import pytest

from querygate.demo import start_embedded, stop_embedded
from querygate.identity import add_user, issue_token
from querygate.provision import DEFAULT_GATEWAY_ROLE, setup_database, url_for
from tests.demo_env import Demo, serving
from tests.gateway.test_fail_closed import MINI_SQL, SLOW, project_with
from tests.ops.audit_checks import assert_chain_whole, assert_one_event_each, assert_verifies
from tests.ops.load import Load
from tests.ops.proxy import proxied
from tests.ops.test_metrics import samples, value

pytestmark = pytest.mark.anyio


def assert_failed_cleanly(load: Load, codes: set[str]) -> None:
    """Only 200s and 503s; no 503 carries a row; each names an expected code."""
    assert set(load.statuses()) <= {200, 503}, load.statuses()
    for response in load.responses:
        if response.status_code == 503:
            body = response.json()
            assert set(body) == {"error"} and body["error"]["code"] in codes, body


async def wait_ready(client: httpx.AsyncClient, *, ready: bool, within_s: float = 30) -> dict[
        str, object]:
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        response = await client.get("/readyz")
        if (response.status_code == 200) == ready:
            body: dict[str, object] = response.json()
            return body
        assert asyncio.get_running_loop().time() < deadline, response.text
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_audit_store_cut_then_stalled_under_load(demo: Demo, tmp_path: Path) -> None:
    async with proxied(demo.gateway_url) as proxy:
        project = project_with(demo, tmp_path, audit_url=proxy.via(demo.gateway_url),
                               settings="  audit_timeout_ms: 500\n  pool_timeout_s: 1")
        async with serving(project) as client:
            load = Load(client, demo.token("alice"))
            async with load.running():
                await load.until(lambda: load.count(200) >= 20)
                proxy.cut()
                cut_at = len(load.responses)
                await load.until(lambda: load.count(503, cut_at) >= 10)
                down = await wait_ready(client, ready=False)
                assert down["not_ready"] == ["audit"]
                proxy.restore()
                await wait_ready(client, ready=True)
                back = len(load.responses)
                await load.until(lambda: load.count(200, back) >= 20)
                proxy.stall()
                stalled = len(load.responses)
                await load.until(lambda: load.count(503, stalled) >= 10)
                proxy.restore()
                back = len(load.responses)
                await load.until(lambda: load.count(200, back) >= 20)
            assert_failed_cleanly(load, {"audit_unavailable", "unavailable"})
            assert (await client.get("/readyz")).status_code == 200
    assert_one_event_each(demo.admin_url, load.audit_ids())
    assert_chain_whole(demo.admin_url)
    assert_verifies(demo.project_dir)  # the same log, read without the proxy


async def mini_project(folder: Path, server: str) -> tuple[Path, str]:
    """A one-table project on its own server; returns its folder and a token."""
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (id bigint PRIMARY KEY, email text)")
        conn.execute("INSERT INTO customers VALUES (42, 'a@example.com')")
    setup_database(server)
    gateway_url = url_for(server, user=DEFAULT_GATEWAY_ROLE)
    (folder / "queries").mkdir()
    (folder / "queries" / "q.sql").write_text(MINI_SQL)
    (folder / "querygate.yaml").write_text(
        f"database:\n  url: '{gateway_url}'\nsecret_key: restart-test-secret-key-0123456789\n"
        "settings:\n  pool_timeout_s: 1\n  audit_timeout_ms: 1000\n"
        "classification:\n  public.customers:\n    subject: customer\n"
        "    columns: {email: [pii.contact]}\n"
        "roles:\n  support:\n    functions: ['*']\n    fields: {pii.contact: allow}\n")
    async with await psycopg.AsyncConnection.connect(gateway_url, autocommit=True) as conn:
        await add_user(conn, "a@example.com", ["support"])
        token, _ = await issue_token(conn, "a@example.com")
    return folder, token


@pytest.mark.slow
async def test_data_server_restarted_under_load(tmp_path: Path) -> None:
    pg = tmp_path / "pg"
    server = start_embedded(pg)
    try:
        project, token = await mini_project(tmp_path, server)
        async with serving(project) as client:
            before = samples((await client.get("/metrics")).text)
            load = Load(client, token)
            async with load.running():
                await load.until(lambda: load.count(200) >= 20)
                await asyncio.to_thread(stop_embedded, pg)
                stopped = len(load.responses)
                await load.until(lambda: load.count(503, stopped) >= 10)
                down = await wait_ready(client, ready=False)
                assert "database" in down["not_ready"]  # type: ignore[operator]
                await asyncio.to_thread(start_embedded, pg)
                back = len(load.responses)
                await load.until(lambda: load.count(200, back) >= 20)
            assert_failed_cleanly(load, {"unavailable", "audit_unavailable"})
            assert load.count(503) >= 10
            await wait_ready(client, ready=True)
            after = samples((await client.get("/metrics")).text)
        errors = "querygate_pool_connect_errors_total"  # how the outage shows in the metrics
        assert value(after, errors, pool="query") > value(before, errors, pool="query")
        assert_one_event_each(server, load.audit_ids())
        assert_chain_whole(server)
        assert_verifies(project)
    finally:
        stop_embedded(pg)


async def test_an_exhausted_query_pool_is_a_bounded_503_counted_and_audited(
        demo: Demo, tmp_path: Path) -> None:
    project = project_with(demo, tmp_path, extra_sql=SLOW,
                           settings="  pool_max_size: 1\n  pool_min_size: 1\n"
                                    "  pool_timeout_s: 0.3\n  statement_timeout_ms: 5000")
    async with serving(project) as client:
        before = samples((await client.get("/metrics")).text)
        token = demo.token("alice")
        holder = Load(client, token, function="slow_lookup", params={"seconds": 1})
        waiter = Load(client, token)
        async with holder.running(callers=1), waiter.running(callers=2):
            await waiter.until(lambda: waiter.count(503) >= 2)
        after = samples((await client.get("/metrics")).text)
        assert (await client.get("/readyz")).status_code == 200
    assert {r.json()["error"]["code"] for r in waiter.responses if r.status_code == 503} == {
        "unavailable"}
    assert value(after, "querygate_pool_timeouts_total", pool="query") > value(
        before, "querygate_pool_timeouts_total", pool="query")
    assert value(after, "querygate_calls_total", function="get_customer_by_id", decision="error",
                 code="unavailable", client="http") >= 2
    with psycopg.connect(demo.admin_url) as conn:  # the audit pool was free to record them
        row = conn.execute("SELECT count(*) FROM querygate.audit_events WHERE error_code = "
                           "'unavailable' AND actor_email = 'alice@example.com'").fetchone()
    assert row is not None and row[0] >= 2
    assert_one_event_each(demo.admin_url, holder.audit_ids() + waiter.audit_ids())
    assert_chain_whole(demo.admin_url)
