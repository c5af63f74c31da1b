"""Fail closed: no data leaves without its audit event; timeouts are 504 and audited."""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio
import httpx
import psycopg
import pytest

from querygate.demo import start_embedded, stop_embedded
from querygate.provision import DEFAULT_GATEWAY_ROLE, setup_database, url_for
from tests.demo_env import Demo, call, serving

pytestmark = pytest.mark.anyio


def project_with(demo: Demo, folder: Path, *, audit_url: str | None = None,
                 settings: str = "", extra_sql: str = "") -> Path:
    target = folder / "project"
    shutil.copytree(demo.project_dir, target)
    config = target / "querygate.yaml"
    text = config.read_text()
    if audit_url:
        text = text.replace("  url: null", f"  url: '{audit_url}'", 1)
    if settings:
        text += f"\nsettings:\n{settings}\n"
    if extra_sql:
        (target / "queries" / "extra.sql").write_text(extra_sql)
        text = text.replace("      - get_customer_by_id\n", "      - get_customer_by_id\n"
                            "      - slow_lookup\n", 1)
    config.write_text(text)
    return target


async def test_audit_store_stopped_means_503_and_no_rows(demo: Demo, tmp_path: Path) -> None:
    pg = tmp_path / "audit-pg"
    server = start_embedded(pg)
    setup_database(server, parts=("audit",), read_schemas=())
    audit_url = url_for(server, user=DEFAULT_GATEWAY_ROLE)
    project = project_with(demo, tmp_path, audit_url=audit_url,
                           settings="  audit_timeout_ms: 1000")
    try:
        async with serving(project) as client:
            ok = await call(client, demo.token("alice"), "get_customer_by_id", {"customer_id": 42})
            assert ok.status_code == 200
            stop_embedded(pg)
            down = await call(client, demo.token("alice"), "get_customer_by_id",
                              {"customer_id": 42})
            assert down.status_code == 503
            assert down.json() == {"error": {"code": "audit_unavailable", "message": (
                down.json()["error"]["message"])}}
            assert "rows" not in down.text and "Canary" not in down.text
            start_embedded(pg)
            for _ in range(40):  # the pool reconnects by itself, with backoff
                back = await call(client, demo.token("alice"), "get_customer_by_id",
                                  {"customer_id": 42})
                if back.status_code == 200:
                    break
                assert back.status_code == 503
                await anyio.sleep(0.5)
            assert back.status_code == 200, back.text
    finally:
        stop_embedded(pg)


async def test_audit_insert_refused_means_503(demo: Demo, client: httpx.AsyncClient) -> None:
    with psycopg.connect(demo.admin_url, autocommit=True) as conn:
        conn.execute("REVOKE EXECUTE ON FUNCTION querygate.audit_append FROM querygate_gateway")
    try:
        response = await call(client, demo.token("alice"), "get_customer_by_id",
                              {"customer_id": 42})
        assert response.status_code == 503
        assert "rows" not in response.json()
    finally:
        with psycopg.connect(demo.admin_url, autocommit=True) as conn:
            conn.execute("GRANT EXECUTE ON FUNCTION querygate.audit_append TO querygate_gateway")


async def test_audit_store_slow_past_its_timeout_means_503(demo: Demo, tmp_path: Path) -> None:
    project = project_with(demo, tmp_path, settings="  audit_timeout_ms: 300")
    async with serving(project) as client:
        with psycopg.connect(demo.admin_url) as blocker:
            blocker.execute("SELECT * FROM querygate.audit_head FOR UPDATE")
            response = await call(client, demo.token("alice"), "get_customer_by_id",
                                  {"customer_id": 42})
            blocker.rollback()
        assert response.status_code == 503
        after = await call(client, demo.token("alice"), "get_customer_by_id", {"customer_id": 42})
        assert after.status_code == 200


SLOW = """\
-- name: slow_lookup
-- Sleeps on purpose, for the timeout test.
-- param seconds: numeric
SELECT id, pg_sleep(:seconds)::text AS slept FROM customers WHERE id = 42;
"""


async def test_statement_timeout_is_504_audited_and_the_connection_comes_back(
        demo: Demo, tmp_path: Path) -> None:
    project = project_with(demo, tmp_path, extra_sql=SLOW,
                           settings="  statement_timeout_ms: 200\n  pool_max_size: 1")
    async with serving(project) as client:
        slow = await call(client, demo.token("alice"), "slow_lookup", {"seconds": 2})
        assert slow.status_code == 504
        assert slow.json()["error"]["code"] == "statement_timeout"
        fast = await call(client, demo.token("alice"), "slow_lookup", {"seconds": 0})
        assert fast.status_code == 200
    with psycopg.connect(demo.admin_url) as conn:
        row = conn.execute("SELECT decision, error_code FROM querygate.audit_events "
                           "WHERE function_name = 'slow_lookup' ORDER BY seq").fetchall()
    assert row[-2:] == [("error", "statement_timeout"), ("allowed", None)]


async def test_an_exhausted_pool_makes_callers_wait_a_bounded_time_then_503(
        demo: Demo, tmp_path: Path) -> None:
    project = project_with(demo, tmp_path, extra_sql=SLOW,
                           settings="  pool_max_size: 1\n  pool_min_size: 1\n"
                                    "  pool_timeout_s: 0.5\n  statement_timeout_ms: 5000")
    async with serving(project) as client:
        token = demo.token("alice")
        slow = anyio.create_task_group()
        async with slow:
            slow.start_soon(call, client, token, "slow_lookup", {"seconds": 1.5})
            await anyio.sleep(0.2)
            started = anyio.current_time()
            # the only connection is busy: identity cannot be checked in time either
            waiting = await call(client, token, "get_customer_by_id", {"customer_id": 42})
            waited = anyio.current_time() - started
        assert waiting.status_code == 503
        assert waiting.json()["error"]["code"] == "unavailable"
        assert 0.4 <= waited < 1.4
        after = await call(client, token, "get_customer_by_id", {"customer_id": 42})
        assert after.status_code == 200


MINI_SQL = """\
-- name: get_customer_by_id
-- param customer_id: int
SELECT id, email FROM customers WHERE id = :customer_id;
"""


async def test_postgresql_restarted_calls_fail_cleanly_and_recover(tmp_path: Path) -> None:
    import asyncio

    from querygate.identity import add_user, issue_token

    pg = tmp_path / "pg"
    server = start_embedded(pg)
    try:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute("CREATE TABLE customers (id bigint PRIMARY KEY, email text)")
            conn.execute("INSERT INTO customers VALUES (42, 'a@example.com')")
        setup_database(server)
        gateway_url = url_for(server, user=DEFAULT_GATEWAY_ROLE)
        (tmp_path / "queries").mkdir()
        (tmp_path / "queries" / "q.sql").write_text(MINI_SQL)
        (tmp_path / "querygate.yaml").write_text(
            f"database:\n  url: '{gateway_url}'\nsecret_key: restart-test-secret-key\n"
            "settings:\n  pool_timeout_s: 1\n  audit_timeout_ms: 1000\n"
            "classification:\n  public.customers:\n    subject: customer\n"
            "    columns: {email: [pii.contact]}\n"
            "roles:\n  support:\n    functions: ['*']\n    fields: {pii.contact: allow}\n")
        async with await psycopg.AsyncConnection.connect(gateway_url, autocommit=True) as conn:
            await add_user(conn, "a@example.com", ["support"])
            token, _ = await issue_token(conn, "a@example.com")
        async with serving(tmp_path) as client:
            assert (await call(client, token, "get_customer_by_id",
                               {"customer_id": 42})).status_code == 200
            stop_embedded(pg)
            down = await call(client, token, "get_customer_by_id", {"customer_id": 42})
            assert down.status_code == 503 and "rows" not in down.json()
            await asyncio.to_thread(start_embedded, pg)
            statuses = []
            for _ in range(60):
                response = await call(client, token, "get_customer_by_id", {"customer_id": 42})
                statuses.append(response.status_code)
                if response.status_code == 200:
                    break
                await anyio.sleep(0.5)
            assert statuses[-1] == 200
            assert set(statuses) <= {200, 503}
    finally:
        stop_embedded(pg)
