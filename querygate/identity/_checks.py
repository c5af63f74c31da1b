"""Token checks of concurrent calls, one statement per batch (as the audit's group commit).

Every call's ``qg_…`` token is still looked up in the directory after the call arrived and
before anything runs for it: a batch goes out as soon as the one before it is answered, so a
revocation committed before a batch's statement starts holds for every token in that batch,
exactly as for a call checked on its own. A call alone (concurrency 1) goes out at once. What
the batch saves is the per-statement cost on the gateway (the send, the wait, the result), not
a look-up: nothing is cached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from querygate.errors import NotAuthenticated, Unavailable
from querygate.identity._model import Identity
from querygate.identity._store import (
    MALFORMED,
    UNKNOWN,
    authenticate,
    identity_from_row,
    look_up,
)
from querygate.identity._tokens import looks_like_token, token_hash

log = logging.getLogger("querygate.identity.checks")
_Waiting = dict[bytes, list["asyncio.Future[Identity]"]]
Connect = Callable[[], Awaitable[psycopg.AsyncConnection[Any]]]


class TokenChecks:
    """``check(token)`` answers once the batch holding the token has been looked up. A call
    alone (the caller passes its own connection) is checked at once on that connection, when
    no other check is under way: it pays no hop through the batch, nor a second connection."""

    def __init__(self, pool: AsyncConnectionPool[Any], *, timeout_s: float,
                 max_batch: int = 256) -> None:
        self.pool, self.timeout_s, self.max_batch = pool, timeout_s, max_batch
        self._waiting: _Waiting = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._under_way = 0  # look-ups sent and not yet answered, alone or in a batch

    async def check(self, token: str | None, conn: Connect | None = None) -> Identity:
        """The identity ``token`` stands for now; NotAuthenticated when there is none.
        ``conn`` gives the call's own connection when the call is alone."""
        if not token or not looks_like_token(token):
            raise NotAuthenticated(MALFORMED)
        if conn is not None and not self._under_way and not self._waiting:
            self._under_way += 1
            try:
                return await authenticate(await conn(), token)
            finally:
                self._under_way -= 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="querygate-token-checks")
        future: asyncio.Future[Identity] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(token_hash(token), []).append(future)
        self._wake.set()
        return await future

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for futures in self._waiting.values():
            _settle(futures, Unavailable("the gateway is shutting down"))

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                batch = dict(list(self._waiting.items())[:self.max_batch])
                for digest in batch:
                    del self._waiting[digest]
                try:
                    await self._look_up(batch)
                except asyncio.CancelledError:
                    for futures in batch.values():
                        _settle(futures, Unavailable("the gateway is shutting down"))
                    raise

    async def _look_up(self, batch: _Waiting) -> None:
        self._under_way += 1
        try:
            async with self.pool.connection(timeout=self.timeout_s) as conn:
                rows = await look_up(conn, list(batch))
        except Exception as exc:  # every call in the batch fails as its own check would
            if not isinstance(exc, PoolTimeout | psycopg.Error | OSError):
                log.exception("token check of %d tokens failed unexpectedly", len(batch))
            for futures in batch.values():
                _settle(futures, exc)
            return
        finally:
            self._under_way -= 1
        for digest, futures in batch.items():
            row = rows.get(digest)
            try:
                if row is None:
                    raise NotAuthenticated(UNKNOWN)
                who = identity_from_row(row)
            except NotAuthenticated as refused:
                _settle(futures, refused)
                continue
            except Exception as exc:  # an unforeseen row: these calls fail, the others go on
                log.exception("a token's directory row could not be read")
                _settle(futures, exc)
                continue
            for future in futures:
                if not future.done():  # a caller that went away is left alone
                    future.set_result(who)


def _settle(futures: list[asyncio.Future[Identity]], exc: BaseException) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(exc)
