"""The PostgreSQL front door on the demo project, served from a thread of its own so that
blocking clients (psql, psycopg, java, node) can talk to it from the test."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import psycopg
import pytest

from querygate.gateway import Gateway
from querygate.pgwire import PgServer, PostgresConfig
from querygate.project import load_project
from tests.demo_env import Demo

T = TypeVar("T")


class LoopThread:
    """An event loop running in a thread; ``run`` executes a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Front:
    """A running front door: its port, the server and the gateway behind it, the demo."""

    server: PgServer
    gateway: Gateway
    demo: Demo
    loop: LoopThread

    @property
    def port(self) -> int:
        return self.server.port

    def dsn(self, name: str, *, token: str | None = None, **extra: str) -> str:
        params = {"host": "127.0.0.1", "port": str(self.port), "dbname": "querygate",
                  "user": f"{name}@example.com", "password": token or self.demo.token(name),
                  "sslmode": "disable", **extra}
        return " ".join(f"{k}={v}" for k, v in params.items())

    def connect(self, name: str, **extra: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn(name), autocommit=True, **extra)


def start_front(demo: Demo, config: PostgresConfig | None = None) -> Front:
    loop = LoopThread()
    config = config or PostgresConfig("127.0.0.1", 0)

    async def open_() -> tuple[Gateway, PgServer]:
        gateway = await Gateway.open(load_project(demo.project_dir))
        server = PgServer(gateway, config)
        await server.start()
        return gateway, server

    gateway, server = loop.run(open_())
    return Front(server, gateway, demo, loop)


def stop_front(front: Front) -> None:
    async def close() -> None:
        await front.server.close()
        await front.gateway.close()

    front.loop.run(close())
    front.loop.stop()


@pytest.fixture(scope="module")
def front(demo: Demo) -> Iterator[Front]:
    made = start_front(demo)
    yield made
    stop_front(made)


def with_limits(config: PostgresConfig, **limits: Any) -> PostgresConfig:
    return replace(config, **limits)
