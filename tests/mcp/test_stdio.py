"""`querygate mcp` over stdio, driven by the official SDK's stdio client, forwarding to a real
gateway process: the same tools, masks, refusals and audit as over HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from collections.abc import AsyncIterator

import psycopg
import pytest
from mcp import Client, MCPError, StdioServerParameters

from tests.demo_env import Demo
from tests.mcp.conftest import AGENT, text_of

pytestmark = pytest.mark.anyio


@contextlib.asynccontextmanager
async def stdio_client(url: str, token: str, mode: str = "auto") -> AsyncIterator[Client]:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "querygate", "mcp", "--url", url, "--token", token],
        env={k: v for k, v in os.environ.items() if k != "QUERYGATE_TOKEN"})
    async with Client(params, mode=mode, cache=None, read_timeout_seconds=60) as client:
        yield client


async def test_an_agent_on_stdio_gets_masked_rows_audited_for_its_person(
        demo: Demo, server: str, agent_token: str) -> None:
    async with stdio_client(server, agent_token) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        result = await client.call_tool("get_customer_by_id",
                                        {"customer_id": 42, "reason": "TICKET-78"})
        refused = await client.call_tool("revenue_by_plan", {"since": "2024-01-01"})
        bad = await client.call_tool("get_customer_by_id", {"customer_id": "x"})
    assert "get_customer_by_id" in tools and "revenue_by_plan" not in tools
    assert "run_sql" not in tools
    assert tools["get_customer_by_id"].input_schema["required"] == ["customer_id"]
    body = json.loads(text_of(result))
    assert result.is_error is False and body == result.structured_content
    record = dict(zip(body["columns"], body["rows"][0], strict=True))
    assert record["iban"] == "****4242" and "ssn" not in record
    assert body["fields"]["iban"] == "mask.last4"
    assert refused.is_error and text_of(refused).startswith("403 policy_denied: ")
    assert bad.is_error and bad.structured_content["error"]["parameter"] == "customer_id"
    with psycopg.connect(demo.gateway_url) as conn:
        row = conn.execute("SELECT actor_email, context::text FROM querygate.audit_events "
                           "WHERE event_id = %s", (body["audit_id"],)).fetchone()
    assert row is not None and row[0] == AGENT
    context = json.loads(row[1])
    assert context["client"] == "mcp" and context["on_behalf_of_email"] == "alice@example.com"


async def test_run_sql_over_stdio_for_an_adhoc_role_with_the_handshake(demo: Demo,
                                                                        server: str) -> None:
    async with stdio_client(server, demo.token("carol"), "legacy") as client:
        names = {t.name for t in (await client.list_tools()).tools}
        result = await client.call_tool("run_sql", {"sql": "SELECT ssn FROM customers "
                                                           "WHERE id = 42", "reason": "DSAR-9"})
    assert "run_sql" in names
    assert json.loads(text_of(result))["fields"] == {"ssn": "mask.hash"}


async def test_a_bad_token_is_a_readable_refusal(server: str) -> None:
    async with stdio_client(server, "qg_not-a-token") as client:
        with pytest.raises(MCPError, match="401 not_authenticated"):
            await client.list_tools()
        refused = await client.call_tool("get_customer_by_id", {"customer_id": 1})
    assert refused.is_error and refused.structured_content["error"]["status"] == 401
    assert refused.structured_content["error"]["code"] == "not_authenticated"


async def test_a_gateway_that_is_not_running_is_a_tool_error(demo: Demo) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    async with stdio_client(url, demo.token("alice")) as client:
        result = await client.call_tool("get_customer_by_id", {"customer_id": 1})
    assert result.is_error and result.structured_content["error"]["code"] == "gateway_unreachable"
    assert "is it running?" in text_of(result)
