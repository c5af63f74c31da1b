"""Group commit: concurrent calls' audit events written together, one transaction per batch.

While one batch waits for its commit (the fsync), the next calls' events queue up; they go
out together as the next batch. Each caller waits for the commit of its own batch before its
data is released, so failing closed is unchanged: a batch that cannot be written fails every
call in it with AuditUnavailable. The chain is linked in batch order by the database, under
the head's row lock (``querygate.audit_append``), exactly as for single appends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from querygate import metrics
from querygate.audit._event import AuditEvent
from querygate.audit._store import Receipt, append_encoded, encode_event
from querygate.errors import AuditUnavailable

_Pending = tuple[AuditEvent, "asyncio.Future[Receipt]"]
log = logging.getLogger("querygate.audit.writer")


def _retrieved(future: asyncio.Future[Receipt]) -> None:
    if not future.cancelled():
        future.exception()


def _expire(future: asyncio.Future[Receipt]) -> None:
    """The caller's wait is over: it fails closed; its event, if written later, stays in the
    log, and the writer leaves the settled future alone."""
    if not future.done():
        future.set_exception(AuditUnavailable("the audit store did not confirm this call in "
                                              "time, so no data was returned"))


class GroupWriter:
    """Appends events in batches; ``append`` returns once the event's batch has committed."""

    def __init__(self, pool: AsyncConnectionPool[Any], *, timeout_s: float,
                 max_batch: int = 500) -> None:
        self.pool, self.timeout_s, self.max_batch = pool, timeout_s, max_batch
        self._queue: list[_Pending] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="querygate-audit-writer")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for _, future in self._queue:
            if not future.done():
                future.set_exception(AuditUnavailable("the gateway is shutting down"))

    async def append(self, event: AuditEvent) -> Receipt:
        """Queue ``event``; wait for its batch's commit (AuditUnavailable past the timeout)."""
        if self._task is None or self._task.done():
            raise AuditUnavailable("the audit writer is not running, so no data was returned")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Receipt] = loop.create_future()
        future.add_done_callback(_retrieved)  # a caller that went away no longer awaits it
        self._queue.append((event, future))
        self._wake.set()
        expiry = loop.call_later(self.timeout_s, _expire, future)  # cheaper than wait_for
        queued = time.perf_counter()
        try:
            return await future
        finally:
            expiry.cancel()
            metrics.AUDIT_WAIT_SECONDS.observe(time.perf_counter() - queued)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
                await self._flush(batch)

    async def _flush(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        batch, documents = _encoded(batch)
        if not batch:
            return
        try:
            places = await self._write(documents)
        except Exception as exc:  # every call in the batch fails closed; the writer goes on
            metrics.observe_batch(len(batch), time.perf_counter() - started, written=False)
            if not isinstance(exc, PoolTimeout | psycopg.Error | OSError):
                log.exception("audit batch of %d events failed unexpectedly", len(batch))
            failure = AuditUnavailable("the audit store could not record this call, so no data "
                                       f"was returned ({type(exc).__name__})")
            for _, future in batch:
                if not future.done():
                    future.set_exception(failure)
            return
        metrics.observe_batch(len(batch), time.perf_counter() - started, written=True)
        for (event, future), (seq, digest) in zip(batch, places, strict=True):
            if not future.done():
                future.set_result(Receipt(str(event.event_id), seq, digest))

    async def _write(self, documents: list[bytes]) -> list[tuple[int, str]]:
        """The whole batch in one statement: one transaction, one commit."""
        async with self.pool.connection(timeout=self.timeout_s) as conn:
            return await append_encoded(conn, documents)


def _encoded(batch: list[_Pending]) -> tuple[list[_Pending], list[bytes]]:
    """The batch's events encoded; an event that cannot be fails its own call alone, closed."""
    kept: list[_Pending] = []
    documents: list[bytes] = []
    for event, future in batch:
        try:
            documents.append(encode_event(event))
        except psycopg.DataError as exc:
            if not future.done():
                future.set_exception(AuditUnavailable(
                    f"the audit store could not record this call, so no data was returned ({exc})"))
            continue
        kept.append((event, future))
    return kept, documents
