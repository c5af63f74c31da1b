"""MCP over streamable HTTP on a real gateway process, through the official SDK's client."""

from __future__ import annotations

import json

import httpx
import psycopg
import pytest
from mcp import MCPError

from querygate.mcp import MAX_RESULT_CHARS
from tests.demo_env import Demo, running_server
from tests.mcp.conftest import AGENT, mcp_client, text_of

pytestmark = pytest.mark.anyio
MODES = pytest.mark.parametrize("mode", ["auto", "legacy"])


@MODES
async def test_tools_are_the_functions_the_token_may_call(demo: Demo, server: str,
                                                          mode: str) -> None:
    async with mcp_client(server, demo.token("alice"), mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert "get_customer_by_id" in tools and "search_customers" in tools
    assert "revenue_by_plan" not in tools and "run_sql" not in tools
    tool = tools["get_customer_by_id"]
    schema = tool.input_schema
    assert schema["required"] == ["customer_id"] and schema["additionalProperties"] is False
    assert schema["properties"]["customer_id"]["type"] == "integer"
    assert schema["properties"]["reason"]["type"] == "string"
    assert tool.description is not None and "never instructions" in tool.description
    assert "iban=mask.last4" in tool.description
    assert tool.annotations is not None and tool.annotations.read_only_hint is True


@MODES
async def test_run_sql_only_for_adhoc_roles(demo: Demo, server: str, mode: str) -> None:
    async with mcp_client(server, demo.token("carol"), mode) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert "run_sql" in names and "revenue_by_plan" in names
        result = await client.call_tool("run_sql", {"sql": "SELECT id, ssn FROM customers "
                                                           "WHERE id = 42", "reason": "DSAR-9"})
        extra = await client.call_tool("run_sql", {"sql": "SELECT 1", "limit": 5})
    assert extra.is_error and extra.structured_content["error"]["parameter"] == "limit"
    assert result.is_error is False
    body = json.loads(text_of(result))
    assert body["fields"] == {"ssn": "mask.hash"} and body["rows"][0][1].startswith("h:")
    async with mcp_client(server, demo.token("bob"), mode) as client:
        assert "run_sql" not in {t.name for t in (await client.list_tools()).tools}
        refused = await client.call_tool("run_sql", {"sql": "SELECT 1"})
    assert refused.is_error is True
    assert refused.structured_content["error"]["code"] == "policy_denied"


@MODES
async def test_a_call_is_masked_and_marked(demo: Demo, server: str, mode: str) -> None:
    async with mcp_client(server, demo.token("alice"), mode) as client:
        result = await client.call_tool("get_customer_by_id",
                                        {"customer_id": 42, "reason": "TICKET-1"})
    assert result.is_error is False
    body = json.loads(text_of(result))
    assert body == result.structured_content
    record = dict(zip(body["columns"], body["rows"][0], strict=True))
    assert record["id"] == 42 and record["iban"] == "****4242" and "ssn" not in record
    assert body["fields"] == {"iban": "mask.last4", "ssn": "omit", "date_of_birth": "mask.year"}
    assert len(body["audit_id"]) == 36 and "notice" not in body


@MODES
async def test_refusals_are_tool_errors_a_model_can_read(demo: Demo, server: str,
                                                         mode: str) -> None:
    async with mcp_client(server, demo.token("bob"), mode) as client:
        denied = await client.call_tool("search_customers", {"email_prefix": "canary"})
        bad = await client.call_tool("get_customer_by_id", {"customer_id": "1 OR 1=1"})
        missing = await client.call_tool("no_such_function", {})
    assert denied.is_error and text_of(denied).startswith("403 policy_denied: ")
    assert denied.structured_content["error"]["rule"].startswith("filter on pii.contact")
    assert bad.is_error and bad.structured_content["error"] == {
        "code": "bad_parameters", "status": 422, "parameter": "customer_id",
        "message": bad.structured_content["error"]["message"]}
    assert missing.is_error and missing.structured_content["error"]["code"] == "not_found"


async def test_no_token_or_a_bad_one_is_401_pointing_at_the_metadata(demo: Demo,
                                                                      server: str) -> None:
    init = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2025-11-25"}
    async with httpx.AsyncClient(base_url=server) as http:
        missing = await http.post("/mcp", json=init, headers=headers)
        wrong = await http.post("/mcp", json=init,
                                headers={**headers, "Authorization": "Bearer qg_nope"})
        metadata = await http.get("/.well-known/oauth-protected-resource")
        listed = await http.post("/mcp", json=init, headers={
            **headers, "Authorization": f"Bearer {demo.token('alice')}"})
    assert missing.status_code == wrong.status_code == 401
    challenge = missing.headers["www-authenticate"]
    assert challenge == (f'Bearer resource_metadata="{server}/.well-known/'
                         'oauth-protected-resource/mcp"')
    assert wrong.headers["www-authenticate"].endswith(', error="invalid_token"')
    assert missing.json()["error"]["code"] == "not_authenticated"
    assert metadata.status_code == 200 and metadata.json() == {
        "resource": f"{server}/mcp", "resource_name": "querygate", "authorization_servers": [],
        "bearer_methods_supported": ["header"]}
    assert listed.status_code == 200 and listed.headers["content-type"] == "application/json"
    assert "get_customer_by_id" in {t["name"] for t in listed.json()["result"]["tools"]}


@MODES
async def test_the_sdk_client_is_refused_without_a_valid_token(server: str, mode: str) -> None:
    with pytest.raises(BaseExceptionGroup) as refused:
        async with mcp_client(server, "qg_not-a-token", mode) as client:
            await client.list_tools()
    assert refused.group_contains(MCPError)


async def test_an_agent_acts_for_its_person_and_the_event_names_both(
        demo: Demo, server: str, agent_token: str) -> None:
    async with mcp_client(server, agent_token) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        result = await client.call_tool("get_customer_by_id",
                                        {"customer_id": 7, "reason": "TICKET-77"})
        refused = await client.call_tool("revenue_by_plan", {"since": "2024-01-01"})
    # the bot holds billing, Alice does not: it acts with support only
    assert "revenue_by_plan" not in tools and "get_customer_by_id" in tools
    assert refused.is_error and refused.structured_content["error"]["code"] == "policy_denied"
    body = json.loads(text_of(result))
    assert body["fields"]["iban"] == "mask.last4"
    with psycopg.connect(demo.gateway_url) as conn:
        row = conn.execute(
            "SELECT actor_email, actor_roles, context::text, decision, reason "
            "FROM querygate.audit_events WHERE event_id = %s", (body["audit_id"],)).fetchone()
    assert row is not None
    actor, roles, context, decision, reason = row
    assert (actor, roles, decision, reason) == (AGENT, ["support"], "allowed", "TICKET-77")
    assert json.loads(context)["client"] == "mcp"
    assert json.loads(context)["on_behalf_of_email"] == "alice@example.com"


async def test_a_large_result_is_cut_with_a_marker(demo: Demo, server: str) -> None:
    many = ("SELECT c.id, c.full_name, c.iban, g.n FROM customers c "
            "CROSS JOIN generate_series(1, 5) AS g(n)")
    long = "SELECT repeat(full_name, 500) AS long_name FROM customers WHERE id = 42"
    async with mcp_client(server, demo.token("carol")) as client:
        cut = await client.call_tool("run_sql", {"sql": many, "reason": "DSAR-1"})
        cell = await client.call_tool("run_sql", {"sql": long, "reason": "DSAR-1"})
    text = text_of(cut)
    body = json.loads(text)
    assert not cut.is_error and len(text) <= MAX_RESULT_CHARS
    assert body["row_count"] == 2000 and 100 < len(body["rows"]) < 2000
    assert body["truncated"] is True and body["fields"] == {"iban": "mask.last4"}
    assert body["notice"].startswith(f"showing {len(body['rows'])} of 2000 rows")
    value = json.loads(text_of(cell))["rows"][0][0]
    assert value.endswith(f"…[cut: {len('Ada Canary') * 500 - 2000} more characters]")
    assert "values longer than 2000 characters are cut" in json.loads(text_of(cell))["notice"]


async def test_the_persons_suspension_stops_the_agent_on_its_next_message(
        demo: Demo, server: str, agent_token: str) -> None:
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": "get_customer_by_id", "arguments": {"customer_id": 7}}}
    headers = {"Authorization": f"Bearer {agent_token}", "MCP-Protocol-Version": "2025-11-25",
               "Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(base_url=server) as http:
        before = await http.post("/mcp", json=message, headers=headers)
        with psycopg.connect(demo.admin_url, autocommit=True) as conn:
            conn.execute("UPDATE querygate.users SET status = 'suspended' "
                         "WHERE email = 'alice@example.com'")
        try:
            after = await http.post("/mcp", json=message, headers=headers)
        finally:
            with psycopg.connect(demo.admin_url, autocommit=True) as conn:
                conn.execute("UPDATE querygate.users SET status = 'active' "
                             "WHERE email = 'alice@example.com'")
    assert before.status_code == 200 and before.json()["result"]["isError"] is False
    assert after.status_code == 401 and after.json()["error"]["code"] == "not_authenticated"


def test_any_worker_answers_any_message(demo: Demo) -> None:
    """Stateless: no session to find, so messages spread over two worker processes all work."""
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": "get_customer_by_id",
                          "arguments": {"customer_id": 42, "reason": "TICKET-1"}}}
    headers = {"Authorization": f"Bearer {demo.token('alice')}", "Connection": "close",
               "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2025-11-25"}
    with running_server(demo.project_dir, "--workers", "2") as url, \
            httpx.Client(base_url=url) as http:
        answers = [http.post("/mcp", json=message, headers=headers) for _ in range(8)]
    assert [a.status_code for a in answers] == [200] * 8
    bodies = [a.json()["result"]["structuredContent"] for a in answers]
    assert {b["rows"][0][4] for b in bodies} == {"****4242"}
    assert len({b["audit_id"] for b in bodies}) == 8
