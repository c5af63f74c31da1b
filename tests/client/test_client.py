"""querygate-client against a real `querygate serve` process: results, masks, errors, export."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
import querygate_client
from querygate_client import (
    AsyncClient,
    AuditUnavailable,
    BadParameters,
    Client,
    NotAuthenticated,
    NotFound,
    OverLimit,
    QuerygateError,
    Refused,
    Timeout,
    Unavailable,
)

from tests.demo_env import Demo, running_server


@pytest.fixture(scope="module")
def server(demo: Demo) -> Iterator[str]:
    with running_server(demo.project_dir) as url:
        yield url


def test_a_call_comes_back_masked_with_its_audit_event(demo: Demo, server: str) -> None:
    with Client(server, token=demo.token("alice")) as qg:
        r = qg.call("get_customer_by_id", customer_id=42, reason="TICKET-1")
    assert "ssn" not in r.columns
    record = r.records()[0]
    assert record["id"] == 42
    assert record["iban"].startswith("****") and len(record["iban"]) == 8
    assert r.fields == {"iban": "mask.last4", "ssn": "omit", "date_of_birth": "mask.year"}
    assert len(r.audit_id) == 36 and r.receipt is not None and r.receipt.seq > 0
    assert r.truncated is False and len(r) == 1


def test_params_mapping_and_keywords_merge(demo: Demo, server: str) -> None:
    with Client(server, token=demo.token("bob")) as qg:
        r = qg.call("customers_created_between", {"from_date": "2000-01-01"},
                    to_date="2100-01-01", reason="BILL-1")
    assert len(r.rows) == 400


def test_each_refusal_raises_its_exception(demo: Demo, server: str) -> None:
    with Client(server, token=demo.token("bob")) as qg:
        with pytest.raises(Refused) as refused:
            qg.call("search_customers", email_prefix="canary")
        assert refused.value.status == 403 and refused.value.code == "policy_denied"
        assert refused.value.rule is not None and "pii.contact" in refused.value.rule
        with pytest.raises(BadParameters) as bad:
            qg.call("get_customer_by_id", customer_id="1 OR 1=1")
        assert bad.value.parameter == "customer_id" and bad.value.code == "bad_parameters"
        with pytest.raises(NotFound):
            qg.call("no_such_function")
        with pytest.raises(Refused, match="adhoc"):
            qg.sql("SELECT 1 AS one")
    with Client(server, token="qg_not-a-real-token") as qg, \
            pytest.raises(NotAuthenticated) as unknown:
        qg.functions()
    assert unknown.value.code == "not_authenticated" and isinstance(unknown.value, QuerygateError)


def test_functions_lists_what_the_token_may_call(demo: Demo, server: str) -> None:
    with Client(server, token=demo.token("alice")) as qg:
        listed = {f.name: f for f in qg.functions()}
    assert "get_customer_by_id" in listed and "revenue_by_plan" not in listed
    fn = listed["get_customer_by_id"]
    assert [(p.name, p.type) for p in fn.parameters] == [("customer_id", "int")]
    assert fn.fields["iban"] == "mask.last4"


def test_adhoc_sql_is_masked(demo: Demo, server: str) -> None:
    with Client(server, token=demo.token("carol")) as qg:
        r = qg.sql("SELECT id, ssn FROM customers WHERE id = 42", reason="DSAR-9")
    assert r.fields == {"ssn": "mask.hash"}
    assert str(r.rows[0][1]).startswith("h:")


def test_export_streams_rows_after_its_header(demo: Demo, server: str) -> None:
    with Client(server, token=demo.token("bob")) as qg, \
            qg.export("customers_created_between", from_date="2000-01-01",
                      to_date="2100-01-01", reason="BILL-2") as rows:
        assert rows.count == 400 and rows.columns[0] == "id"
        seen = [row for row in rows]
    assert len(seen) == 400 and len({row[0] for row in seen}) == 400
    assert len(rows.audit_id) == 36
    with Client(server, token=demo.token("alice")) as qg, \
            qg.export("get_customer_by_id", customer_id=42, reason="TICKET-1") as one:
        iban = one.columns.index("iban")
        assert [row[iban] for row in one] == ["****4242"]
    assert one.fields["ssn"] == "omit"
    with Client(server, token=demo.token("bob")) as qg:  # iterated without `with`: sent then
        plain = qg.export("list_customer_orders", customer_id=42, reason="BILL-2")
        assert len(list(plain)) == plain.count > 0


def test_an_export_refused_raises_before_any_row(demo: Demo, server: str) -> None:
    with Client(server, token=demo.token("bob")) as qg, pytest.raises(Refused), \
            qg.export("search_customers", email_prefix="a"):
        raise AssertionError("no rows for a refused export")


@pytest.mark.anyio
async def test_the_async_client_mirrors_it(demo: Demo, server: str) -> None:
    async with AsyncClient(server, token=demo.token("alice")) as qg:
        r = await qg.call("get_customer_by_id", customer_id=42, reason="TICKET-1")
        assert r.fields["iban"] == "mask.last4" and r.records()[0]["id"] == 42
        assert "get_customer_by_id" in {f.name for f in await qg.functions()}
        with pytest.raises(BadParameters):
            await qg.call("get_customer_by_id")
        async with qg.export("list_customer_orders", customer_id=42,
                             reason="TICKET-1") as rows:
            got = [row async for row in rows]
        assert len(got) == rows.count > 0
        plain = qg.export("list_customer_orders", customer_id=42, reason="TICKET-1")
        assert [row async for row in plain] == got


@pytest.mark.parametrize(("status", "code", "expected"), [
    (429, "limit_exceeded", OverLimit), (503, "audit_unavailable", AuditUnavailable),
    (503, "unavailable", Unavailable), (504, "statement_timeout", Timeout),
])
def test_statuses_map_to_exceptions(status: int, code: str,
                                    expected: type[QuerygateError]) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"error": {"code": code, "message": "m"}})

    with Client("http://gw.test", token="t", transport=httpx.MockTransport(answer)) as qg, \
            pytest.raises(expected) as raised:
        qg.call("f")
    assert raised.value.code == code and raised.value.status == status
    assert type(raised.value) is expected


def test_the_distribution_needs_httpx_only() -> None:
    requires = importlib.metadata.requires("querygate-client") or []
    assert [r.split(">")[0].split("=")[0].strip() for r in requires] == ["httpx"]
    code = ("import sys, querygate_client; "
            "sys.exit(any(m == 'querygate' or m.startswith('querygate.') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
    assert querygate_client.__all__ == [  # the public surface, pinned
        "AsyncClient", "AsyncExport", "AuditUnavailable", "BadParameters", "Client",
        "ConnectionFailed", "Export", "Function", "NotAuthenticated", "NotFound", "OverLimit",
        "Parameter", "QuerygateError", "Receipt", "Refused", "Result", "Timeout", "TooLarge",
        "Unavailable", "UpstreamError", "__version__"]
    assert all(hasattr(querygate_client, name) for name in querygate_client.__all__)
    errors = [getattr(querygate_client, n) for n in querygate_client.__all__
              if n not in ("AsyncClient", "AsyncExport", "Client", "Export", "Function",
                           "Parameter", "Receipt", "Result", "__version__")]
    assert all(issubclass(e, querygate_client.QuerygateError) for e in errors)
