"""Cancel requests for a session another worker process holds, relayed through PostgreSQL.

Worker processes share the front door's port, so the short connection that carries a client's
CancelRequest lands on any of them. The worker that holds the session cancels its running
statement at once. Any other worker sends the request on to all of them with ``NOTIFY`` on the
project's own database; each worker ``LISTEN``\\s there and the one that holds the session
cancels it. The notification never carries the cancel key: it carries the session's process id,
a time and an HMAC of both with the key, under a key derived from the project's
``secret_key``, so a role that listens on the channel learns nothing it could cancel with later
(a replay is refused once ``MAX_AGE_S`` has passed).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import Callable

import psycopg

from querygate.errors import ProjectError

log = logging.getLogger("querygate.pgwire")
CHANNEL = "querygate_pgwire_cancel"
MAX_AGE_S = 30
RECONNECT_S = 2.0
START_TIMEOUT_S = 10.0
QUEUE_SIZE = 32


def _mac(secret: bytes, pid: int, key: int, stamp: int) -> str:
    message = f"{pid}:{key & 0xFFFFFFFF}:{stamp}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:40]


def notice_for(secret: bytes, pid: int, key: int, now: float | None = None) -> str:
    """The payload that asks the holder of session ``pid`` to cancel, proven with its key."""
    stamp = int(now if now is not None else time.time())
    return f"{pid}:{stamp}:{_mac(secret, pid, key, stamp)}"


def verify(secret: bytes, payload: str, key_of: Callable[[int], int | None],
           now: float | None = None) -> int | None:
    """The session's pid when ``payload`` is a fresh request for a session held here."""
    parts = payload.split(":")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    pid, stamp = int(parts[0]), int(parts[1])
    if abs((now if now is not None else time.time()) - stamp) > MAX_AGE_S:
        return None
    key = key_of(pid)
    if key is None or not hmac.compare_digest(_mac(secret, pid, key, stamp), parts[2]):
        return None
    return pid


class CancelRelay:
    """One worker's end of the channel: it listens for requests and sends them on.

    Requests to send on wait in a short queue served by one connection; when it is full (a
    flood of made-up cancel requests), more are dropped: a cancel request is unauthenticated,
    and must not turn into load on the database."""

    def __init__(self, url: str, secret: bytes, key_of: Callable[[int], int | None],
                 cancel: Callable[[int], None]) -> None:
        self.url = url
        self.secret = hmac.new(secret, b"pgwire.cancel", hashlib.sha256).digest()
        self.key_of, self.cancel = key_of, cancel
        self.listening = asyncio.Event()
        self.queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_SIZE)
        self.dropped = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Listen; return once listening, so no request sent on is missed by this worker."""
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._send())]
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                await self.listening.wait()
        except TimeoutError:
            await self.close()
            raise ProjectError("postgres front door: cannot listen for cancel requests on "
                               "the database (LISTEN) within "
                               f"{START_TIMEOUT_S:.0f} s") from None

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def send_on(self, pid: int, key: int) -> None:
        """Ask every worker to cancel session ``pid`` (never waits)."""
        try:
            self.queue.put_nowait(notice_for(self.secret, pid, key))
        except asyncio.QueueFull:
            self.dropped += 1

    async def _send(self) -> None:
        while True:
            payload = await self.queue.get()
            try:
                async with await _connect(self.url, "querygate-cancel") as conn:
                    await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
                    while not self.queue.empty():
                        await conn.execute("SELECT pg_notify(%s, %s)",
                                           (CHANNEL, self.queue.get_nowait()))
            except psycopg.Error as exc:
                log.warning("postgres front door: a cancel request could not be sent on to "
                            "the other workers: %s", type(exc).__name__)

    async def _listen(self) -> None:
        while True:
            try:
                async with await _connect(self.url, "querygate-cancel-listener") as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    async for notice in conn.notifies():
                        pid = verify(self.secret, notice.payload, self.key_of)
                        if pid is not None:
                            self.cancel(pid)
            except psycopg.Error as exc:
                log.warning("postgres front door: the cancel channel dropped (%s); "
                            "listening again", type(exc).__name__)
            await asyncio.sleep(RECONNECT_S)


async def _connect(url: str, name: str) -> psycopg.AsyncConnection[tuple[object, ...]]:
    return await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=5,
                                                 application_name=name)
