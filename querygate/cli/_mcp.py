"""``mcp``: an MCP server over stdio for a local agent, forwarding to a running gateway."""

from __future__ import annotations

import asyncio
import contextlib
import os

import click

from querygate import identity
from querygate.cli._common import command_help, fail


@click.command("mcp", help=command_help(
    "Serve MCP over stdio for a local agent (Claude Desktop, an IDE, any MCP client), "
    "forwarding every message to a running gateway's POST /mcp with your token. It holds no "
    "database credential: tools, masks, refusals and the audit event come from the gateway.",
    "querygate mcp --url http://127.0.0.1:8080 --token $QUERYGATE_TOKEN"))
@click.option("--url", default="http://127.0.0.1:8080", show_default=True,
              help="The gateway's address.")
@click.option("--token", default=None,
              help="The agent's token (default: $QUERYGATE_TOKEN); ideally a service token "
                   "issued --on-behalf-of the person the agent works for.")
def mcp(url: str, token: str | None) -> None:
    token = token or os.environ.get("QUERYGATE_TOKEN") or identity.cached_token()
    if not token:
        fail("no token: pass --token or set QUERYGATE_TOKEN (`querygate tokens issue EMAIL "
             "--on-behalf-of PERSON` gives an agent its own identity)")
        return
    from querygate.mcp import serve_stdio  # the SDK loads only for this command

    click.echo(f"querygate mcp: serving MCP on stdio, forwarding to {url.rstrip('/')}/mcp",
               err=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_stdio(url, token))
