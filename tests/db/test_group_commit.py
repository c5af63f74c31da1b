"""Group commit: batched appends keep the chain gapless and single-headed, and fail closed."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator

import psycopg
import pytest

from querygate import audit
from querygate.audit import GroupWriter
from querygate.errors import AuditUnavailable
from querygate.execute import audit_pool
from querygate.settings import Settings
from tests.db.conftest import Store

pytestmark = pytest.mark.anyio


def event(n: int) -> audit.AuditEvent:
    return audit.AuditEvent(occurred_at=dt.datetime.now(dt.UTC), function_name="f",
                            decision="allowed", actor_email="a@example.com",
                            parameters={"n": n}, subjects=(("customer", str(n)),))


@contextlib.asynccontextmanager
async def running(store: Store, *, size: int, timeout_s: float,
                  kind: type[GroupWriter] = GroupWriter) -> AsyncIterator[GroupWriter]:
    """A started writer on its own audit pool, stopped and closed afterwards."""
    pool = audit_pool(store.gateway_url, Settings(audit_pool_max_size=size))
    await pool.open(wait=True)
    writer = kind(pool, timeout_s=timeout_s)
    writer.start()
    try:
        yield writer
    finally:
        await writer.stop()
        await pool.close()


async def test_concurrent_appends_are_batched_gapless_and_verifiable(store: Store) -> None:
    async with running(store, size=4, timeout_s=10) as writer:
        receipts = await asyncio.gather(*(writer.append(event(n)) for n in range(300)))
    assert sorted(r.seq for r in receipts) == list(range(1, 301))
    assert len({r.event_id for r in receipts}) == 300
    with psycopg.connect(store.admin_url) as conn:
        commits = conn.execute("SELECT count(DISTINCT xmin::text) FROM querygate.audit_events"
                               ).fetchone()
    assert commits is not None and commits[0] < 300  # fewer transactions than events
    async with await psycopg.AsyncConnection.connect(store.gateway_url, autocommit=True) as conn:
        assert (await audit.verify(conn)).ok


async def test_a_failing_batch_fails_every_call_in_it(store: Store) -> None:
    async with running(store, size=2, timeout_s=5) as writer:
        await writer.append(event(0))
        with psycopg.connect(store.admin_url, autocommit=True) as conn:
            conn.execute("REVOKE EXECUTE ON FUNCTION querygate.audit_append FROM querygate_gateway")
        results = await asyncio.gather(*(writer.append(event(n)) for n in range(20)),
                                       return_exceptions=True)
        assert all(isinstance(r, AuditUnavailable) for r in results)
    with pytest.raises(AuditUnavailable):
        await writer.append(event(99))


class _Flaky(GroupWriter):
    """A writer whose second batch meets a fault no one foresaw (a bug, not the database)."""

    batches = 0

    async def _write(self, documents: list[bytes]) -> list[tuple[int, str]]:
        self.batches += 1
        if self.batches == 2:
            raise RuntimeError("unforeseen")
        return await super()._write(documents)


async def test_an_unforeseen_fault_fails_its_batch_and_the_writer_goes_on(store: Store) -> None:
    async with running(store, size=2, timeout_s=5, kind=_Flaky) as writer:
        first = await writer.append(event(0))
        with pytest.raises(AuditUnavailable, match="RuntimeError"):
            await writer.append(event(1))
        after = await writer.append(event(2))
    assert (first.seq, after.seq) == (1, 2)  # nothing of the failed batch reached the log


async def test_an_event_that_cannot_be_stored_fails_alone_not_its_batch(store: Store) -> None:
    """A NUL in a caller's reason (PostgreSQL text cannot hold it) or a float in its parameters
    fails that call, closed; the calls batched with it are written, among them one whose
    parameters hold a NUL (ad-hoc SQL as sent: the json column keeps it escaped)."""
    bad = [dataclasses.replace(event(1), reason="a\x00b"),
           dataclasses.replace(event(2), parameters={"x": 1.5})]
    nul = dataclasses.replace(event(4), parameters={"sql": "SELECT 1\x00"})
    async with running(store, size=2, timeout_s=10) as writer:
        results = await asyncio.gather(
            *(writer.append(e) for e in [event(0), *bad, event(3), nul]), return_exceptions=True)
    assert isinstance(results[1], AuditUnavailable) and isinstance(results[2], AuditUnavailable)
    assert "a\x00b" not in str(results[1]) and "1.5" not in str(results[2])
    kept = [r for r in results if isinstance(r, audit.Receipt)]
    assert sorted(r.seq for r in kept) == [1, 2, 3]
    with psycopg.connect(store.admin_url) as conn:
        rows = conn.execute("SELECT parameters::text FROM querygate.audit_events ORDER BY seq"
                            ).fetchall()
    assert sorted(rows) == [('{"n":0}',), ('{"n":3}',), ('{"sql":"SELECT 1\\u0000"}',)]
    async with await psycopg.AsyncConnection.connect(store.gateway_url, autocommit=True) as conn:
        assert (await audit.verify(conn)).ok
