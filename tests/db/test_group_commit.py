"""Group commit: batched appends keep the chain gapless and single-headed, and fail closed."""

from __future__ import annotations

import asyncio
import datetime as dt

import psycopg
import pytest

from querygate import audit
from querygate.audit._writer import GroupWriter
from querygate.errors import AuditUnavailable
from querygate.execute import audit_pool
from querygate.settings import Settings
from tests.db.conftest import Store

pytestmark = pytest.mark.anyio


def event(n: int) -> audit.AuditEvent:
    return audit.AuditEvent(occurred_at=dt.datetime.now(dt.UTC), function_name="f",
                            decision="allowed", actor_email="a@example.com",
                            parameters={"n": n}, subjects=(("customer", str(n)),))


async def test_concurrent_appends_are_batched_gapless_and_verifiable(store: Store) -> None:
    pool = audit_pool(store.gateway_url, Settings(audit_pool_max_size=4))
    await pool.open(wait=True)
    writer = GroupWriter(pool, timeout_s=10)
    writer.start()
    try:
        receipts = await asyncio.gather(*(writer.append(event(n)) for n in range(300)))
    finally:
        await writer.stop()
        await pool.close()
    assert sorted(r.seq for r in receipts) == list(range(1, 301))
    assert len({r.event_id for r in receipts}) == 300
    with psycopg.connect(store.admin_url) as conn:
        commits = conn.execute("SELECT count(DISTINCT xmin::text) FROM querygate.audit_events"
                               ).fetchone()
    assert commits is not None and commits[0] < 300  # fewer transactions than events
    async with await psycopg.AsyncConnection.connect(store.gateway_url, autocommit=True) as conn:
        assert (await audit.verify(conn)).ok


async def test_a_failing_batch_fails_every_call_in_it(store: Store) -> None:
    pool = audit_pool(store.gateway_url, Settings(audit_pool_max_size=2))
    await pool.open(wait=True)
    writer = GroupWriter(pool, timeout_s=5)
    writer.start()
    try:
        await writer.append(event(0))
        with psycopg.connect(store.admin_url, autocommit=True) as conn:
            conn.execute("REVOKE EXECUTE ON FUNCTION querygate.audit_append FROM querygate_gateway")
        results = await asyncio.gather(*(writer.append(event(n)) for n in range(20)),
                                       return_exceptions=True)
        assert all(isinstance(r, AuditUnavailable) for r in results)
    finally:
        await writer.stop()
        await pool.close()
    with pytest.raises(AuditUnavailable):
        await writer.append(event(99))


class _Flaky(GroupWriter):
    """A writer whose second batch meets a fault no one foresaw (a bug, not the database)."""

    batches = 0

    async def _write(self, events: list[audit.AuditEvent]) -> list[audit.Receipt]:
        self.batches += 1
        if self.batches == 2:
            raise RuntimeError("unforeseen")
        return await super()._write(events)


async def test_an_unforeseen_fault_fails_its_batch_and_the_writer_goes_on(store: Store) -> None:
    pool = audit_pool(store.gateway_url, Settings(audit_pool_max_size=2))
    await pool.open(wait=True)
    writer = _Flaky(pool, timeout_s=5)
    writer.start()
    try:
        first = await writer.append(event(0))
        with pytest.raises(AuditUnavailable, match="RuntimeError"):
            await writer.append(event(1))
        after = await writer.append(event(2))
    finally:
        await writer.stop()
        await pool.close()
    assert (first.seq, after.seq) == (1, 2)  # nothing of the failed batch reached the log
