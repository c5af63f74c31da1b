"""Connection pools: one for functions' queries, one for the audit store, never shared."""

from __future__ import annotations

import functools
import time
import weakref
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from querygate import metrics
from querygate.audit import configure_audit_connection
from querygate.errors import Unavailable
from querygate.settings import Settings


async def _configure_query(conn: psycopg.AsyncConnection[Any], *, timeout_ms: int) -> None:
    """Every query connection: read-only with a statement timeout, set once for the session.

    Autocommit with ``default_transaction_read_only`` makes each statement its own read-only
    transaction, without a BEGIN/COMMIT round trip per call; explicit transactions (exports)
    are read-only too.
    """
    await conn.set_autocommit(True)
    await conn.execute(f"SET statement_timeout = {int(timeout_ms)}; "
                       "SET default_transaction_read_only = on; "
                       "SET idle_in_transaction_session_timeout = 60000")


class CheckedPool(AsyncConnectionPool[Any]):
    """A pool whose liveness check runs only on connections idle for a while.

    A connection that came back to the pool moments ago is used as it is (no extra round
    trip on the hot path); one idle longer than ``idle_s`` is checked first, so a restarted
    server does not hand out dead connections. A connection that dies in between fails its
    call cleanly (503) and the pool discards it.

    The return time is noted in ``putconn``, not in a ``reset`` callback: with a reset
    callback, psycopg_pool hands every returned connection to a worker task, a queue hop and
    a task switch per checkout; without one it goes back to the pool inline.
    """

    def __init__(self, conninfo: str, *, idle_s: float = 1.0, **kwargs: Any) -> None:
        self.idle_s = idle_s
        self._returned: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        super().__init__(conninfo, check=self._check_idle, **kwargs)
        metrics.track_pool(self)

    async def _check_idle(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if time.monotonic() - self._returned.get(conn, 0.0) > self.idle_s:
            await AsyncConnectionPool.check_connection(conn)

    async def putconn(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._returned[conn] = time.monotonic()
        await super().putconn(conn)


def busy(what: str = "database") -> Unavailable:
    """The error for a pool with no free connection within its timeout (``PoolTimeout``)."""
    return Unavailable(f"all {what} connections are busy; try again shortly")


class Lease:
    """One call's query connection, taken once: the token check and then the call's query run
    on it, and it goes back to the pool as soon as the query is read (never held across the
    audit commit). ``release`` may be called early and more than once."""

    def __init__(self, pool: AsyncConnectionPool[Any], timeout_s: float) -> None:
        self.pool, self.timeout_s = pool, timeout_s
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None:
            asked = time.perf_counter()
            try:
                self._conn = await self.pool.getconn(self.timeout_s)
            except PoolTimeout:
                raise busy() from None
            finally:
                metrics.observe_pool_wait("query", time.perf_counter() - asked)
        return self._conn

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self.pool.putconn(conn)

    async def __aenter__(self) -> Lease:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


def query_pool(url: str, settings: Settings, *, size: int | None = None,
               name: str = "querygate-query") -> AsyncConnectionPool[Any]:
    """Read-only connections to the production database: the calls' pool, or (``size``) a
    small one of the same kind for one task, such as the token checks."""
    return CheckedPool(
        url,
        min_size=size or settings.pool_min_size,
        max_size=size or settings.pool_max_size,
        timeout=settings.pool_timeout_s,
        open=False,
        configure=functools.partial(_configure_query, timeout_ms=settings.statement_timeout_ms),
        name=name,
        kwargs={"application_name": "querygate"},
    )


def audit_pool(url: str, settings: Settings) -> AsyncConnectionPool[Any]:
    return CheckedPool(
        url,
        min_size=1,
        max_size=settings.audit_pool_max_size,
        timeout=settings.audit_timeout_ms / 1000,
        open=False,
        configure=functools.partial(configure_audit_connection,
                                    timeout_ms=settings.audit_timeout_ms),
        name="querygate-audit",
        kwargs={"application_name": "querygate-audit", "connect_timeout": 5},
    )
