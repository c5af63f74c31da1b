"""The demo project served against a real database: a Gateway, its ASGI app, users and tokens."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql

from querygate.api import create_app
from querygate.demo import DEMO_USERS, demo_tokens, load_sample, write_project
from querygate.gateway import Gateway
from querygate.project import load_project
from querygate.provision import DEFAULT_GATEWAY_ROLE, setup_database, url_for


@dataclass(frozen=True)
class Demo:
    admin_url: str
    gateway_url: str
    project_dir: Path
    tokens: dict[str, str]

    def token(self, name: str) -> str:
        return self.tokens[f"{name}@example.com"]


def create_database(admin_url: str, template: str | None = None) -> str:
    name = f"qg_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(statement)
    return name


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


@pytest.fixture(scope="session")
def demo_template(admin_url: str) -> Iterator[str]:
    """A database with the sample data and querygate's schema, copied for each module."""
    name = create_database(admin_url)
    url = url_for(admin_url, dbname=name)
    with psycopg.connect(url) as conn:
        load_sample(conn, customers=400)
    setup_database(url)
    yield name
    drop_database(admin_url, name)


def make_demo(admin_url: str, template: str, folder: Path) -> tuple[Demo, str]:
    name = create_database(admin_url, template)
    admin = url_for(admin_url, dbname=name)
    gateway_url = url_for(admin, user=DEFAULT_GATEWAY_ROLE)
    project_dir = write_project(folder, gateway_url)
    tokens = asyncio.run(demo_tokens(gateway_url))
    assert set(tokens) == set(DEMO_USERS)
    return Demo(admin, gateway_url, project_dir, tokens), name


@pytest.fixture(scope="module")
def demo(admin_url: str, demo_template: str,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    made, name = make_demo(admin_url, demo_template, tmp_path_factory.mktemp("demo"))
    yield made
    drop_database(admin_url, name)


@pytest.fixture
async def gateway(demo: Demo) -> AsyncIterator[Gateway]:
    gw = await Gateway.open(load_project(demo.project_dir))
    yield gw
    await gw.close()


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(gateway, lifespan_close=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://querygate.test") as c:
        yield c


async def call(client: httpx.AsyncClient, token: str, function: str, params: object = None,
               reason: str | None = "TICKET-1") -> httpx.Response:
    body: dict[str, object] = {"params": params or {}}
    if reason is not None:
        body["reason"] = reason
    return await client.post(f"/v1/call/{function}", json=body,
                             headers={"Authorization": f"Bearer {token}"})


@contextlib.contextmanager
def running_server(project_dir: Path, *extra: str) -> Iterator[str]:
    """`querygate serve` as a real process on a free port; yields its URL once it answers."""
    with running_server_process(project_dir, *extra) as proc:
        yield proc.url


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess(subprocess.Popen[str]):
    url: str


@contextlib.contextmanager
def running_server_process(project_dir: Path, *extra: str) -> Iterator[ServerProcess]:
    """`querygate serve` as a real process on a free port, once it answers (``.url``)."""
    port = free_port()
    proc = ServerProcess([sys.executable, "-m", "querygate", "serve", "--port", str(port),
                          "--project", str(project_dir), *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = proc.url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    proc.kill()
                    raise RuntimeError("the server did not start: "
                                       f"{proc.communicate(timeout=10)[0]}") from None
                time.sleep(0.2)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.communicate(timeout=10)


@contextlib.asynccontextmanager
async def serving_gateway(project_dir: Path) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
    """A Gateway opened on a project, and an in-process HTTP client on its app."""
    gw = await Gateway.open(load_project(project_dir))
    transport = httpx.ASGITransport(app=create_app(gw, lifespan_close=False))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://querygate.test") as c:
            yield gw, c
    finally:
        await gw.close()


@contextlib.asynccontextmanager
async def serving(project_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process HTTP client on a Gateway opened on a project."""
    async with serving_gateway(project_dir) as (_, client):
        yield client
