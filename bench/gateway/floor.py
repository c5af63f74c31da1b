"""The floor under each call: the work the gateway cannot leave out, each measured alone.

    .venv/bin/python -m bench.gateway.floor [--calls 2000] [--database-url URL]

On one connection, one operation at a time (concurrency 1), as the gateway's role:

  SELECT 1                 a round trip to PostgreSQL, nothing else
  lookup                   the one-row SELECT the lookup scenario runs (prepared)
  INSERT + COMMIT, sync    one ~1 KB JSON row committed with synchronous_commit on: the commit
                           waits for the WAL flush, as the audit event's commit does
  INSERT + COMMIT, async   the same with synchronous_commit off: the difference is the flush
  audit append, 1 subject  the gateway's own append (querygate.audit_append, its content
                           constraint, chain and subject index), one lookup's event, committed
  audit append, 50 subj.   the same for a 50-row page's event (50 subject index rows)
  audit append, 100k subj. an export's event of 100,000 rows (5 times): the caller reads the
                           export's first byte only once it has committed
  token look-up            identity.authenticate on a qg_ token: its hash looked up in the
                           directory, one round trip, as every call does
  JSON, 50-row page        orjson encoding of the page scenario's 50 rows as an answer
  canonical event          the audit event's canonical bytes and hash for such a page
                           (50 subjects, 7 fields)

It prints the median and p95 per operation in microseconds. Subtract these from the gateway's
p50 at concurrency 1 (bench.gateway.compare) to see what is left to take out.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg.rows import dict_row

from bench.gateway.scenarios import BENCH_USER
from bench.harness import add_bench_user, arguments, demo_database, percentile, postgres
from querygate import audit, identity
from querygate.provision import DEFAULT_GATEWAY_ROLE, url_for

PAGE = ("SELECT c.id, c.full_name, c.email, c.phone, c.iban, c.date_of_birth, c.country "
        "FROM customers c WHERE c.id > %s ORDER BY c.id LIMIT 50")


async def timed(label: str, calls: int, work: Callable[[int], Awaitable[object]]) -> None:
    for i in range(min(50, calls)):  # warm: statements prepared, caches filled
        await work(i)
    samples = []
    for i in range(calls):
        start = time.perf_counter()
        await work(i)
        samples.append((time.perf_counter() - start) * 1e6)
    samples.sort()
    print(f"{label:<28} median {statistics.median(samples):8.0f} µs   "
          f"p95 {percentile(samples, 0.95):8.0f} µs", flush=True)


def page_event(rows: list[dict[str, Any]]) -> audit.AuditEvent:
    return audit.AuditEvent(
        occurred_at=dt.datetime.now(dt.UTC), function_name="list_customers_page",
        decision="allowed", actor_id="usr_0123456789abcdef", actor_email=BENCH_USER,
        actor_roles=("bench",), parameters={"after": 1}, reason="bench", rows_returned=50,
        fields={"id": "allow", "full_name": "allow", "email": "mask.email",
                "phone": "mask.email", "iban": "mask.last4", "date_of_birth": "mask.year",
                "country": "allow"},
        subjects=tuple(("customer", str(r["id"])) for r in rows), duration_us=900)


async def insert_commit(admin: str, calls: int) -> None:
    """A logged table (a temporary one writes no WAL), as the superuser who may create it."""
    body = orjson.dumps({"pad": "x" * 1000}).decode()
    async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
        await conn.execute("DROP TABLE IF EXISTS floor_events")
        await conn.execute("CREATE TABLE floor_events (id bigserial PRIMARY KEY, body jsonb)")
        for mode in ("on", "off"):
            await conn.execute(f"SET synchronous_commit = {mode}")

            async def insert(i: int) -> None:
                async with conn.transaction():
                    await conn.execute("INSERT INTO floor_events (body) VALUES (%s)", (body,))

            await timed(f"INSERT + COMMIT, sync {mode}", calls, insert)
        await conn.execute("DROP TABLE floor_events")


async def audit_appends(url: str, calls: int) -> None:
    """The gateway's append of one event, as its writer does for a call alone (a batch of one),
    on an audit connection (synchronous_commit on)."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        await audit.configure_audit_connection(conn, timeout_ms=10_000)
        pool = _OnePool(conn)
        for label, rows, times in (("audit append, 1 subject", 1, calls),
                                   ("audit append, 50 subj.", 50, calls),
                                   ("audit append, 100k subj.", 100_000, 5)):
            page = [{"id": 10_000 + i} for i in range(rows)]

            async def append(i: int, page: list[dict[str, Any]] = page) -> audit.Receipt:
                return await audit.append(pool, page_event(page),  # type: ignore[arg-type]
                                          timeout_s=60)

            await timed(label, times, append)


class _OnePool:
    """The one connection, lent as a pool would (``audit.append`` takes a pool)."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn

    @contextlib.asynccontextmanager
    async def connection(self, timeout: float | None = None
                         ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        yield self.conn


async def measure(admin: str, url: str, token: str, calls: int, customers: int) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await timed("SELECT 1", calls, lambda i: conn.execute("SELECT 1", prepare=True))
        await timed("lookup", calls, lambda i: conn.execute(
            "SELECT * FROM customers WHERE id = %s", (1 + i % customers,), prepare=True))
        await insert_commit(admin, calls)
        await timed("token look-up", calls, lambda i: identity.authenticate(conn, token))
        await audit_appends(url, calls)
        cur = conn.cursor(row_factory=dict_row)
        rows = await (await cur.execute(PAGE, (1,))).fetchall()
        columns = list(rows[0])

        async def encode(i: int) -> bytes:
            return orjson.dumps({"columns": columns, "rows": rows}, default=str)

        async def canonical(i: int) -> bytes:
            return page_event(rows).content_hash()

        await timed("JSON, 50-row page", calls, encode)
        await timed("canonical event, 50 subj.", calls, canonical)


def main() -> None:
    parser = arguments(__doc__, __spec__)
    parser.add_argument("--calls", type=int, default=2000, help="operations per measurement")
    parser.add_argument("--customers", type=int, default=5000, help="demo customers to load")
    parser.add_argument("--database-url", help="a superuser URL; database floor_bench is "
                        "dropped and created (default: embedded PostgreSQL)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qg-floor-") as tmp, \
            postgres(Path(tmp), args.database_url) as server:
        admin = demo_database(server, "floor_bench", args.customers)
        gateway_url = url_for(admin, user=DEFAULT_GATEWAY_ROLE)
        token = add_bench_user(gateway_url, BENCH_USER, ["support"])
        asyncio.run(measure(admin, gateway_url, token, args.calls, args.customers))


if __name__ == "__main__":
    main()
