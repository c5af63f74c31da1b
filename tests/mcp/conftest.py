"""A real `querygate serve` process on the demo project, an agent (a service identity acting for
Alice), and MCP SDK clients connected to it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import psycopg
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from querygate import identity
from tests.demo_env import Demo, drop_database, make_demo, running_server

AGENT = "triage-bot@agents.example.com"


@pytest.fixture(scope="package")
def demo(admin_url: str, demo_template: str,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """One demo database for the HTTP and the stdio tests (the server below is the costly part)."""
    made, name = make_demo(admin_url, demo_template, tmp_path_factory.mktemp("mcp-demo"))
    yield made
    drop_database(admin_url, name)


@pytest.fixture(scope="package")
def server(demo: Demo) -> Iterator[str]:
    with running_server(demo.project_dir) as url:
        yield url


@pytest.fixture(scope="package")
def agent_token(demo: Demo) -> str:
    """A service holding support and billing, with a token acting for Alice (support)."""

    async def issue() -> str:
        async with await psycopg.AsyncConnection.connect(demo.gateway_url,
                                                         autocommit=True) as conn:
            await identity.add_user(conn, AGENT, ("support", "billing"), kind="service")
            token, _ = await identity.issue_token(conn, AGENT, on_behalf_of="alice@example.com")
            return token

    return asyncio.run(issue())


@contextlib.asynccontextmanager
async def mcp_client(url: str, token: str | None, mode: str = "auto") -> AsyncIterator[Client]:
    """The official SDK's client on POST /mcp with a bearer token (``mode``: "auto" probes the
    2026 protocol, "legacy" runs the initialize handshake)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http, \
            Client(streamable_http_client(f"{url}/mcp", http_client=http),
                   mode=mode, cache=None) as client:
        yield client


def text_of(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)
