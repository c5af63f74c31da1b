"""Soak: a long run against a real `querygate serve`, then the books are checked.

Run by hand:  .venv/bin/python -m bench.ops.soak [--minutes 10] [--concurrency 16]

Every 200 response must have exactly one audit event (by its audit_id), the chain must
verify, and the gateway's resident memory must stay flat (the last quarter of the run's
samples against the first quarter after warm-up).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import psycopg

from bench.gateway.scenarios import prepare
from bench.harness import arguments, postgres, start_serve, stop
from querygate import audit
from querygate.provision import DEFAULT_GATEWAY_ROLE, url_for

CALLS: list[tuple[str, Callable[[random.Random], dict[str, object]]]] = [
    ("get_customer_by_id", lambda r: {"customer_id": r.randint(1, 5000)}),
    ("list_orders_page", lambda r: {"after": f"ord_{r.randint(1, 90000):x}"}),
    ("get_customer_by_id", lambda r: {"customer_id": "not a number"}),  # 422, audited too
]


async def worker(client: httpx.AsyncClient, token: str, until: float, seed: int,
                 ok: list[str], statuses: dict[int, int]) -> None:
    rng = random.Random(seed)
    while time.monotonic() < until:
        name, params = rng.choice(CALLS)
        response = await client.post(f"/v1/call/{name}", json={"params": params(rng),
                                                                "reason": "soak"},
                                     headers={"Authorization": f"Bearer {token}"})
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if response.status_code == 200:
            ok.append(response.json()["audit_id"])


async def drive(url: str, token: str, minutes: float, concurrency: int, pid: int) -> tuple[
        list[str], dict[int, int], list[float]]:
    ok: list[str] = []
    statuses: dict[int, int] = {}
    rss: list[float] = []
    until = time.monotonic() + minutes * 60
    proc = psutil.Process(pid)

    async def sample() -> None:
        while time.monotonic() < until:
            rss.append(proc.memory_info().rss / 2**20)
            await asyncio.sleep(1)

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        await asyncio.gather(sample(), *(worker(client, token, until, i, ok, statuses)
                                         for i in range(concurrency)))
    return ok, statuses, rss


def main() -> None:
    parser = arguments(__doc__, __spec__)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--database-url", help="a superuser URL (default: embedded PostgreSQL)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qg-soak-") as tmp, \
            postgres(Path(tmp), args.database_url) as server:
        admin, project, token, _ = prepare(Path(tmp), server, 5000)
        gateway_url = url_for(admin, user=DEFAULT_GATEWAY_ROLE)
        serve = start_serve(project)
        try:
            ok, statuses, rss = asyncio.run(drive(serve.url, token, args.minutes,
                                                  args.concurrency, serve.pid))
        finally:
            stop(serve)
        report(admin, gateway_url, args, ok, statuses, rss)


def report(admin: str, gateway_url: str, args: argparse.Namespace, ok: list[str],
           statuses: dict[int, int], rss: list[float]) -> None:
    with psycopg.connect(admin) as conn:
        counts: dict[str, int] = dict(conn.execute(
            "SELECT event_id::text, count(*) FROM querygate.audit_events "
            "WHERE event_id::text = ANY(%s) GROUP BY 1", (ok,)).fetchall())

    async def verified() -> audit.Verification:
        async with await psycopg.AsyncConnection.connect(gateway_url) as c:
            return await audit.verify(c)

    chain = asyncio.run(verified())
    quarter = max(len(rss) // 4, 1)
    early, late = statistics.median(rss[quarter:2 * quarter] or rss), \
        statistics.median(rss[-quarter:])
    print(f"{args.minutes:g} min at concurrency {args.concurrency}: responses {statuses}")
    print(f"200 responses: {len(ok)}; with exactly one audit event: "
          f"{sum(1 for i in ok if counts.get(i) == 1)}; missing: "
          f"{sum(1 for i in ok if i not in counts)}")
    state = "intact" if chain.ok else f"BROKEN at {chain.first_bad_seq}: {chain.problem}"
    print(f"chain: {state}, {chain.checked} events")
    print(f"gateway RSS: {early:.1f} MB early, {late:.1f} MB late, max {max(rss):.1f} MB")


if __name__ == "__main__":
    main()
