"""``querygate mcp``: an MCP server over stdio for a local agent, forwarding every message to a
running gateway's ``POST /mcp`` with the caller's token.

It holds no database credential and decides nothing: the tool list, the masks, the refusals and
the audit event all come from the gateway, exactly as for an agent connected over HTTP. Its only
job is the hop from the agent's pipes to the gateway, and turning a failed hop into something the
agent can read (a tool error for a call, a protocol error for the list).
"""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import mcp.types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from mcp.types.version import LATEST_HANDSHAKE_VERSION

from querygate.errors import QuerygateError, UpstreamRefused
from querygate.mcp import _tools

TIMEOUT_S = 120.0




class Forwarder:
    """JSON-RPC requests to the gateway's ``/mcp``, one POST each (the endpoint is stateless)."""

    def __init__(self, url: str, token: str, *, timeout_s: float = TIMEOUT_S,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self._ids = itertools.count(1)
        self._http = httpx.AsyncClient(
            base_url=self.url, timeout=timeout_s, transport=transport,
            headers={"Authorization": f"Bearer {token}",
                     "Accept": "application/json, text/event-stream",
                     "MCP-Protocol-Version": LATEST_HANDSHAKE_VERSION,
                     "User-Agent": "querygate-mcp-stdio"})

    async def request(self, method: str, params: dict[str, Any] | None) -> dict[str, Any]:
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": next(self._ids), "method": method}
        if params is not None:
            body["params"] = params
        try:
            response = await self._http.post("/mcp", json=body)
        except httpx.TransportError as exc:
            raise UpstreamRefused(502, "gateway_unreachable",
                                  f"cannot reach the gateway at {self.url} "
                                  f"({type(exc).__name__}); is it running?") from None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code != 200 or not isinstance(payload, dict):
            error = payload.get("error") if isinstance(payload, dict) else None
            error = error if isinstance(error, dict) else {}
            raise UpstreamRefused(response.status_code, str(error.get("code") or "http_error"),
                                  str(error.get("message") or
                                      f"the gateway answered HTTP {response.status_code}"))
        if isinstance(payload.get("error"), dict):
            raise MCPError(int(payload["error"].get("code", -32603)),
                           str(payload["error"].get("message", "error")))
        result = payload.get("result")
        return result if isinstance(result, dict) else {}

    async def aclose(self) -> None:
        await self._http.aclose()


def proxy_server(forwarder: Forwarder) -> Server[Any]:
    """A low-level server whose two handlers ask the gateway."""

    async def list_tools(ctx: ServerRequestContext[Any, Any],
                         params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        try:
            result = await forwarder.request("tools/list", None)
        except QuerygateError as exc:
            raise MCPError(types.INTERNAL_ERROR,
                           f"{exc.status} {exc.code}: {exc.message}") from None
        return types.ListToolsResult.model_validate(result)

    async def call_tool(ctx: ServerRequestContext[Any, Any],
                        params: types.CallToolRequestParams) -> types.CallToolResult:
        try:
            result = await forwarder.request("tools/call", {"name": params.name,
                                                            "arguments": params.arguments or {}})
        except QuerygateError as exc:
            return _tools.failure(exc)
        return types.CallToolResult.model_validate(result)

    return Server("querygate", version=_tools.server_version(), instructions=_tools.INSTRUCTIONS,
                  on_list_tools=list_tools, on_call_tool=call_tool)


async def serve_stdio(url: str, token: str) -> None:
    """Serve MCP on this process's stdin and stdout until the agent closes them."""
    forwarder = Forwarder(url, token)
    server = proxy_server(forwarder)
    try:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
    finally:
        await forwarder.aclose()
