"""``querygate.open``: the gateway inside a Python program, with the same decisions and audit."""

from __future__ import annotations

import psycopg
import pytest

import querygate
from querygate import audit
from querygate.demo import CANARIES
from tests.demo_env import Demo

pytestmark = pytest.mark.anyio


async def _last_event(demo: Demo) -> tuple[int, audit.AuditEvent]:
    async with await psycopg.AsyncConnection.connect(demo.gateway_url, autocommit=True) as conn:
        stored = (await audit.search(conn, audit.Query(limit=1)))[0]
    return stored.seq, stored.event


async def test_a_call_in_process_is_masked_and_audited_as_python(demo: Demo) -> None:
    async with querygate.open(demo.project_dir) as gw:
        result = await gw.call("get_customer_by_id", {"customer_id": 42},
                               token=demo.token("alice"), reason="TICKET-7")
    row = dict(zip(result.columns, result.rows[0], strict=True))
    assert row["iban"] == "****" + CANARIES["iban"][-4:]
    assert "ssn" not in row and result.fields["ssn"] == "omit"
    seq, event = await _last_event(demo)
    assert seq == result.receipt.seq
    assert (event.function_name, event.decision, event.context["client"]) == (
        "get_customer_by_id", "allowed", "python")
    assert event.reason == "TICKET-7" and event.actor_email == "alice@example.com"


async def test_refusals_raise_the_error_classes_and_are_audited(demo: Demo) -> None:
    async with querygate.open(demo.project_dir) as gw:
        with pytest.raises(querygate.PolicyDenied):
            await gw.sql("SELECT count(*) FROM customers", token=demo.token("alice"))
        assert (await _last_event(demo))[1].decision == "denied"
        with pytest.raises(querygate.NotAuthenticated):
            await gw.call("get_customer_by_id", {"customer_id": 42}, token="qg_not_a_token")


async def test_functions_and_adhoc_sql_follow_the_callers_roles(demo: Demo) -> None:
    async with querygate.open(demo.project_dir) as gw:
        alice = await gw.functions(token=demo.token("alice"))
        dave = await gw.functions(token=demo.token("dave"))
        counted = await gw.sql("SELECT count(*) AS n FROM customers", token=demo.token("dave"))
    assert "get_customer_by_id" in alice and set(alice) < set(dave)
    assert counted.rows[0][0] > 0
