"""Field control on the demo database: the runtime second guard, new columns, probing, error
messages that could echo values, and ad-hoc SQL under the same rules."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
from pathlib import Path

import httpx
import psycopg
import pytest
from click.testing import CliRunner

from querygate.cli import main
from querygate.demo import CANARIES
from tests.demo_env import Demo, call, serving_gateway

pytestmark = pytest.mark.anyio

EXTRA = """\
-- name: find_by_ssn_prefix
-- param prefix: text
SELECT id FROM customers WHERE ssn LIKE :prefix || '%';

-- name: ssn_as_number
-- param customer_id: int
SELECT ssn::int AS n FROM customers WHERE id = :customer_id;

-- name: ssn_divides
-- param customer_id: int
SELECT 1 / (length(ssn) - 11) AS x FROM customers WHERE id = :customer_id;
"""


def derived(demo: Demo, folder: Path, extra_sql: str = EXTRA) -> Path:
    target = folder / "project"
    shutil.copytree(demo.project_dir, target)
    (target / "queries" / "extra.sql").write_text(extra_sql)
    config = target / "querygate.yaml"
    text = config.read_text().replace(
        "      - get_customer_by_id\n",
        "      - get_customer_by_id\n      - find_by_ssn_prefix\n      - ssn_as_number\n", 1)
    config.write_text(text)
    return target


def all_canaries() -> list[str]:
    return [v for k, v in CANARIES.items() if k != "full_name"]


async def test_probing_a_column_you_cannot_see_is_refused(demo: Demo, tmp_path: Path) -> None:
    async with serving_gateway(derived(demo, tmp_path)) as (_, client):
        refused = await call(client, demo.token("alice"), "find_by_ssn_prefix", {"prefix": "999"})
        assert refused.status_code == 403
        assert "public.customers.ssn" in refused.json()["error"]["message"]
        allowed = await call(client, demo.token("dave"), "find_by_ssn_prefix", {"prefix": "999-42"})
        assert allowed.status_code == 200 and allowed.json()["rows"] == [[42]]


async def test_errors_that_would_echo_a_value_carry_only_a_fixed_message(
        demo: Demo, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with serving_gateway(derived(demo, tmp_path)) as (_, client):
        for function in ("ssn_as_number", "ssn_divides"):
            response = await call(client, demo.token("dave"), function, {"customer_id": 42})
            assert response.status_code == 502, response.text
            assert response.json()["error"]["message"].startswith(
                "a parameter value was rejected by the database (SQLSTATE 22")
            for value in all_canaries():
                assert value not in response.text
                assert value not in caplog.text


async def test_runtime_guard_refuses_a_result_lineage_did_not_predict(
        demo: Demo, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with serving_gateway(derived(demo, tmp_path)) as (gw, client):
        fn = gw.functions["get_customer_by_id"]
        wrong = tuple(dataclasses.replace(c, sources=frozenset({"public.customers.country"}),
                                          tags=()) if c.name == "ssn" else c for c in fn.columns)
        gw.functions = {**gw.functions, "get_customer_by_id": dataclasses.replace(
            fn, columns=wrong)}
        gw._plans.clear()
        response = await call(client, demo.token("dave"), "get_customer_by_id",
                              {"customer_id": 42})
        assert response.status_code == 502
        assert "rows" not in response.json()
        assert CANARIES["ssn"] not in response.text
        assert "get_customer_by_id is inconsistent" in caplog.text
        assert "public.customers.ssn" in caplog.text


async def _call_dave(project: Path, demo: Demo) -> httpx.Response:
    async with serving_gateway(project) as (_, client):
        return await call(client, demo.token("dave"), "get_customer_by_id", {"customer_id": 42})
    raise AssertionError("unreachable")


def test_a_column_added_after_the_lock_stays_hidden_until_classified(
        demo: Demo, tmp_path: Path) -> None:
    project = derived(demo, tmp_path)
    runner = CliRunner()
    locked = runner.invoke(main, ["check", "--lock", "--project", str(project)])
    assert locked.exit_code == 0, locked.output
    with psycopg.connect(demo.admin_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE customers ADD COLUMN secret_note text "
                     "DEFAULT 'CANARY-NEW-COLUMN'")
        conn.execute("GRANT SELECT ON customers TO querygate_gateway")
    try:
        after = runner.invoke(main, ["check", "--project", str(project)])
        assert after.exit_code == 1
        assert "public.customers.secret_note, which is not in querygate.lock" in after.output
        response = asyncio.run(_call_dave(project, demo))
        assert response.status_code == 200
        assert "CANARY-NEW-COLUMN" not in response.text
        assert response.json()["fields"]["secret_note"] == "mask.full"
        assert CANARIES["ssn"] in response.text  # dave's own grants still apply
        relocked = runner.invoke(main, ["check", "--lock", "--project", str(project)])
        assert relocked.exit_code == 0
        assert "CANARY-NEW-COLUMN" in asyncio.run(_call_dave(project, demo)).text
    finally:
        with psycopg.connect(demo.admin_url, autocommit=True) as conn:
            # the ad-hoc masked view reads the approved column: a migration drops it with
            # CASCADE, and the gateway rebuilds its views when it next starts
            conn.execute("ALTER TABLE customers DROP COLUMN secret_note CASCADE")


async def test_adhoc_sql_is_masked_audited_and_only_for_adhoc_roles(
        client: httpx.AsyncClient, demo: Demo) -> None:
    statement = "SELECT c.id, c.ssn, upper(c.iban) AS loud FROM customers c WHERE c.id = 42"
    carol = await client.post("/v1/sql", json={"sql": statement, "reason": "DSAR-9"},
                              headers={"Authorization": f"Bearer {demo.token('carol')}"})
    assert carol.status_code == 200, carol.text
    body = carol.json()
    assert body["fields"] == {"ssn": "mask.hash", "loud": "mask.last4"}
    assert CANARIES["ssn"] not in carol.text and CANARIES["iban"] not in carol.text
    alice = await client.post("/v1/sql", json={"sql": statement},
                              headers={"Authorization": f"Bearer {demo.token('alice')}"})
    assert alice.status_code == 403
    with psycopg.connect(demo.admin_url) as conn:
        row = conn.execute("SELECT function_name, parameters, subjects, decision FROM "
                           "querygate.audit_events WHERE event_id = %s",
                           (body["audit_id"],)).fetchone()
    assert row == ("adhoc_sql", {"sql": statement}, [{"type": "customer", "id": "42"}],
                   "allowed")


@pytest.mark.parametrize(("statement", "status"), [
    ("UPDATE customers SET ssn = NULL", 422),
    ("SELECT 1; DELETE FROM customers", 422),
    ("SELECT id FROM customers WHERE id = :x", 422),
    ("SELECT id /* /* */ , ssn -- */ FROM customers", 422),
    ("SELECT set_config('statement_timeout', '0', false)", 403),
    ("SELECT * FROM pg_catalog.pg_authid", 422),
    ("SELECT id FROM customers WHERE ssn LIKE '9%'", 200),
    ("SELECT no_such_function(ssn) FROM customers", 422),
])
async def test_adhoc_refusals(client: httpx.AsyncClient, demo: Demo, statement: str,
                              status: int) -> None:
    response = await client.post("/v1/sql", json={"sql": statement},
                                 headers={"Authorization": f"Bearer {demo.token('dave')}"})
    assert response.status_code == status, response.text
    with psycopg.connect(demo.admin_url) as conn:
        assert conn.execute("SELECT count(*) FROM customers WHERE ssn IS NOT NULL").fetchone() \
            == (400,)
