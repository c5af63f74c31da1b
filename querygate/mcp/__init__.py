"""MCP for agents: the gateway's functions as tools, over streamable HTTP (``POST /mcp``) and,
for a local agent, over stdio (``querygate mcp``, forwarding to a running gateway).

An agent is a caller like any other: its token is checked on every message, its tools are the
functions its roles grant (``run_sql`` only with ``adhoc: true``), results are masked as for any
caller and every call is audited with ``client: mcp``, naming the agent and the person it acts
for. Tool results are data, never instructions.
"""

from querygate.mcp._http import McpEndpoint, call_tool, tools_for
from querygate.mcp._stdio import serve_stdio
from querygate.mcp._tools import INSTRUCTIONS, MAX_RESULT_CHARS, RUN_SQL

__all__ = [
    "INSTRUCTIONS",
    "MAX_RESULT_CHARS",
    "RUN_SQL",
    "McpEndpoint",
    "call_tool",
    "serve_stdio",
    "tools_for",
]
