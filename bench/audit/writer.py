"""The audit writer on its own: one transaction per event against group commit, side by side.

Run by hand:  .venv/bin/python -m bench.audit.writer [--writers 64] [--seconds 10]

Starts an embedded PostgreSQL (synchronous_commit on, fsync on), sets up the audit tables, and
lets N concurrent writers append realistic events for a fixed time, first one durable
transaction per event, then through the group-commit writer. Verifies the chain afterwards.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import psycopg

from bench.harness.cli import arguments
from querygate import audit
from querygate.audit import GroupWriter
from querygate.demo import start_embedded, stop_embedded
from querygate.execute import audit_pool
from querygate.provision import DEFAULT_GATEWAY_ROLE, setup_database, url_for
from querygate.settings import Settings


def event(n: int) -> audit.AuditEvent:
    return audit.AuditEvent(
        occurred_at=dt.datetime.now(dt.UTC), function_name="get_customer_by_id",
        decision="allowed", actor_id="usr_0123456789abcdef", actor_email="alex@example.com",
        actor_roles=("support",), parameters={"customer_id": n}, reason="TICKET-1042",
        rows_returned=1, fields={"id": "allow", "email": "allow", "iban": "mask.last4",
                                 "ssn": "omit", "date_of_birth": "mask.year"},
        subjects=(("customer", str(n)),), client_addr="10.0.0.5", duration_us=900)


async def drive(append: Callable[[audit.AuditEvent], Awaitable[object]], writers: int,
                seconds: float) -> int:
    done = 0
    deadline = time.perf_counter() + seconds

    async def writer(w: int) -> None:
        nonlocal done
        n = w
        while time.perf_counter() < deadline:
            await append(event(n))
            done, n = done + 1, n + writers

    await asyncio.gather(*(writer(w) for w in range(writers)))
    return done


async def main(writers: int, seconds: float) -> None:
    folder = Path(tempfile.mkdtemp(prefix="qg-writer-"))
    try:
        server = start_embedded(folder / "pg")
        setup_database(server, parts=("audit",), read_schemas=())
        url = url_for(server, user=DEFAULT_GATEWAY_ROLE)
        settings = Settings(audit_pool_max_size=10, audit_timeout_ms=30000)
        pool = audit_pool(url, settings)
        await pool.open(wait=True)
        single = await drive(lambda e: audit.append(pool, e, timeout_s=30), writers, seconds)
        group = GroupWriter(pool, timeout_s=30)
        group.start()
        batched = await drive(group.append, writers, seconds)
        await group.stop()
        await pool.close()
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            verified = await audit.verify(conn)
        print(f"{writers} concurrent writers, {seconds:.0f} s each, durable commits "
              f"(synchronous_commit on)")
        print(f"  one transaction per event: {single / seconds:8.0f} events/s")
        print(f"  group commit:              {batched / seconds:8.0f} events/s "
              f"({batched / single:.1f}x)")
        print(f"  chain after both: {'intact' if verified.ok else 'BROKEN'}, "
              f"{verified.checked} events, gapless to seq {verified.head_seq}")
    finally:
        stop_embedded(folder / "pg")
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    parser = arguments(__doc__, __spec__)
    parser.add_argument("--writers", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.writers, args.seconds))
