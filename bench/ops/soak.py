"""Soak: a long run at a steady rate against a real `querygate serve`, then the books are checked.

Run by hand:  .venv/bin/python -m bench.ops.soak [--minutes 30] [--rate 200]

Both front doors carry the load at once: HTTP callers and PostgreSQL-protocol callers (psycopg
over the front door), a mix of functions and a bad parameter now and then. Alongside, people
come and go (a user is added, calls, is revoked, and their token must then be refused on
both doors), and one person whose role allows 30 calls a minute keeps calling, so the limit
fires all along. Every second the gateway's resident memory, its open file descriptors and the
database's connections are sampled.

At the end: every HTTP 200 has exactly one audit event (by its audit_id), the front door's
successful calls equal its `allowed` events, no revoked token got an answer, the chain
verifies, and memory, file descriptors and connections are compared between the first and the
last quarter of the run (after warm-up).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import psycopg

from bench.gateway.scenarios import BENCH_ROLE, BENCH_SQL, BENCH_USER
from bench.harness import (
    add_bench_user,
    arguments,
    demo_database,
    free_port,
    postgres,
    start_serve,
    stop,
    write_project,
)
from querygate import audit, identity
from querygate.provision import DEFAULT_GATEWAY_ROLE, url_for

CALLS: list[tuple[str, Callable[[random.Random], dict[str, object]]]] = [
    ("get_customer_by_id", lambda r: {"customer_id": r.randint(1, 5000)}),
    ("list_orders_page", lambda r: {"after": f"ord_{r.randint(1, 90000):x}"}),
    ("list_customers_page", lambda r: {"after": r.randint(1, 4900)}),
    ("get_customer_by_id", lambda r: {"customer_id": "not a number"}),  # 422, audited too
]
LIMITED_ROLE = """
  soak_limited:
    functions: [get_customer_by_id]
    limits: {calls_per_minute: 30}
    fields:
      pii.name: allow
      pii.contact: mask.email
      pii.financial: mask.last4
      pii.government_id: omit
      pii.birthdate: mask.year
"""
LIMITED_USER = "limited@example.com"


@dataclass
class Books:
    """What the callers saw, to be checked against the log at the end."""

    http_ok: list[str] = field(default_factory=list)
    http: Counter[int] = field(default_factory=Counter)
    wire_ok: int = 0
    wire: Counter[str] = field(default_factory=Counter)
    revoked_answered: int = 0  # a revoked token that got rows: must stay 0
    revocations: int = 0
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # rss MB, fds, conns


class Pace:
    """One shared budget of calls per second, so the load is steady, not as fast as it goes."""

    def __init__(self, rate: float) -> None:
        self.gap, self.next = 1.0 / rate, time.monotonic()

    async def wait(self) -> None:
        now = time.monotonic()
        self.next = max(self.next + self.gap, now)
        await asyncio.sleep(self.next - now)


async def http_caller(client: httpx.AsyncClient, token: str, until: float, seed: int,
                      pace: Pace, books: Books) -> None:
    rng = random.Random(seed)
    while time.monotonic() < until:
        await pace.wait()
        name, params = rng.choice(CALLS)
        response = await client.post(f"/v1/call/{name}", json={"params": params(rng),
                                                                "reason": "soak"},
                                     headers={"Authorization": f"Bearer {token}"})
        books.http[response.status_code] += 1
        if response.status_code == 200:
            books.http_ok.append(response.json()["audit_id"])


async def wire_caller(port: int, token: str, until: float, seed: int, pace: Pace,
                      books: Books) -> None:
    rng = random.Random(seed)
    async with await psycopg.AsyncConnection.connect(
            host="127.0.0.1", port=port, user=BENCH_USER, password=token, dbname="querygate",
            sslmode="disable", autocommit=True) as conn:
        while time.monotonic() < until:
            await pace.wait()
            try:
                await (await conn.execute("SELECT * FROM get_customer_by_id(%s)",
                                          (rng.randint(1, 5000),))).fetchall()
            except psycopg.Error as exc:
                books.wire[exc.sqlstate or type(exc).__name__] += 1
            else:
                books.wire_ok += 1
                books.wire["ok"] += 1


async def limited_caller(client: httpx.AsyncClient, token: str, until: float,
                         books: Books) -> None:
    """One person over their limit of 30 calls a minute, all run long: 429s, never a 5xx."""
    while time.monotonic() < until:
        response = await client.post("/v1/call/get_customer_by_id",
                                     json={"params": {"customer_id": 7}},
                                     headers={"Authorization": f"Bearer {token}"})
        books.http[response.status_code] += 1
        if response.status_code == 200:
            books.http_ok.append(response.json()["audit_id"])
        await asyncio.sleep(1.0)


async def comings_and_goings(client: httpx.AsyncClient, gateway_url: str, port: int,
                             until: float, books: Books) -> None:
    """Every 20 s: a new person calls on both doors, is revoked, and must then be refused."""
    n = 0
    while time.monotonic() < until - 20:
        n += 1
        email = f"leaver{n}@example.com"
        token = await asyncio.to_thread(add_bench_user, gateway_url, email, ["bench"])
        headers = {"Authorization": f"Bearer {token}"}
        body = {"params": {"customer_id": 42}}
        before = await client.post("/v1/call/get_customer_by_id", json=body, headers=headers)
        books.http[before.status_code] += 1
        if before.status_code == 200:
            books.http_ok.append(before.json()["audit_id"])
        async with await psycopg.AsyncConnection.connect(gateway_url, autocommit=True) as conn:
            await identity.revoke_user(conn, email, by="soak")
        books.revocations += 1
        after = await client.post("/v1/call/get_customer_by_id", json=body, headers=headers)
        books.http[after.status_code] += 1
        books.revoked_answered += after.status_code == 200
        try:
            async with await psycopg.AsyncConnection.connect(
                    host="127.0.0.1", port=port, user=email, password=token, dbname="querygate",
                    sslmode="disable", autocommit=True) as conn:
                await (await conn.execute("SELECT * FROM get_customer_by_id(42)")).fetchall()
            books.revoked_answered += 1
        except psycopg.OperationalError:
            books.wire["revoked refused"] += 1
        await asyncio.sleep(20)


async def sampler(pid: int, admin: str, until: float, books: Books) -> None:
    proc = psutil.Process(pid)
    async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
        while time.monotonic() < until:
            row = await (await conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            )).fetchone()
            books.samples.append((proc.memory_info().rss / 2**20, proc.num_fds(),
                                  int(row[0]) if row else 0))
            await asyncio.sleep(1)


async def drive(url: str, port: int, tokens: dict[str, str], admin: str, gateway_url: str,
                args: argparse.Namespace, pid: int) -> Books:
    books = Books()
    until = time.monotonic() + args.minutes * 60
    pace = Pace(args.rate)
    limits = httpx.Limits(max_connections=args.concurrency + 2)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        await asyncio.gather(
            sampler(pid, admin, until, books),
            limited_caller(client, tokens[LIMITED_USER], until, books),
            comings_and_goings(client, gateway_url, port, until, books),
            *(http_caller(client, tokens[BENCH_USER], until, i, pace, books)
              for i in range(args.concurrency)),
            *(wire_caller(port, tokens[BENCH_USER], until, 1000 + i, pace, books)
              for i in range(args.concurrency // 2)))
    return books


def main() -> None:
    parser = arguments(__doc__, __spec__)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=200,
                        help="calls per second, HTTP and front door together")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="HTTP callers (half as many front door sessions)")
    parser.add_argument("--database-url", help="a superuser URL (default: embedded PostgreSQL)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qg-soak-") as tmp, \
            postgres(Path(tmp), args.database_url) as server:
        admin = demo_database(server, "soak", 5000)
        gateway_url = url_for(admin, user=DEFAULT_GATEWAY_ROLE)
        port = free_port()
        project = write_project(Path(tmp), gateway_url, queries={"bench.sql": BENCH_SQL},
                                config=BENCH_ROLE + LIMITED_ROLE
                                + f"\npostgres:\n  listen: 127.0.0.1:{port}\n")
        tokens = {BENCH_USER: add_bench_user(gateway_url, BENCH_USER, ["bench"]),
                  LIMITED_USER: add_bench_user(gateway_url, LIMITED_USER, ["soak_limited"])}
        serve = start_serve(project)
        try:
            books = asyncio.run(drive(serve.url, port, tokens, admin, gateway_url, args,
                                      serve.pid))
        finally:
            stop(serve)
        report(admin, gateway_url, args, books)


def _quarters(values: list[float]) -> tuple[float, float]:
    quarter = max(len(values) // 4, 1)
    return statistics.median(values[quarter:2 * quarter] or values), \
        statistics.median(values[-quarter:])


def report(admin: str, gateway_url: str, args: argparse.Namespace, books: Books) -> None:
    with psycopg.connect(admin) as conn:
        counts: dict[str, int] = dict(conn.execute(
            "SELECT event_id::text, count(*) FROM querygate.audit_events "
            "WHERE event_id::text = ANY(%s) GROUP BY 1", (books.http_ok,)).fetchall())
        row = conn.execute("SELECT count(*) FROM querygate.audit_events WHERE decision = "
                           "'allowed' AND context->>'client' = 'postgres'").fetchone()
        wire_events = int(row[0]) if row else 0

    async def verified() -> audit.Verification:
        async with await psycopg.AsyncConnection.connect(gateway_url) as c:
            return await audit.verify(c)

    chain = asyncio.run(verified())
    print(f"{args.minutes:g} min at {args.rate:g} calls/s: HTTP {dict(sorted(books.http.items()))}; "
          f"front door {dict(books.wire)}")
    print(f"HTTP 200s: {len(books.http_ok)}; with exactly one audit event: "
          f"{sum(1 for i in books.http_ok if counts.get(i) == 1)}; missing: "
          f"{sum(1 for i in books.http_ok if i not in counts)}")
    print(f"front door calls answered: {books.wire_ok}; its allowed events: {wire_events}")
    print(f"revocations: {books.revocations}; revoked tokens answered: {books.revoked_answered}")
    state = "intact" if chain.ok else f"BROKEN at {chain.first_bad_seq}: {chain.problem}"
    print(f"chain: {state}, {chain.checked} events")
    for i, what in enumerate(("gateway RSS MB", "gateway open fds", "database connections")):
        series = [float(s[i]) for s in books.samples]
        early, late = _quarters(series)
        print(f"{what}: {early:.1f} early, {late:.1f} late, max {max(series):.1f}")


if __name__ == "__main__":
    main()
