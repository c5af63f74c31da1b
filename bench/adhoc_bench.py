"""A named-function lookup and the same lookup as ad-hoc SQL, through the in-process gateway.

Run by hand, once per build, and compare the two runs side by side:

    .venv/bin/python bench/adhoc_bench.py [--calls 400]
    PYTHONPATH=/path/to/other/checkout .venv/bin/python bench/adhoc_bench.py   # another build

It starts an embedded PostgreSQL in a temporary folder, loads the demo data set, and calls
``get_customer_by_id`` and ``SELECT … FROM customers c WHERE c.id = …`` as the demo's
compliance user (an ad-hoc role), one call at a time, each audited as usual. It prints the
median and p95 wall time per call and the gateway process's CPU per call.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import psycopg

import querygate
from querygate.demo import demo_tokens, load_sample, start_embedded, stop_embedded
from querygate.demo._run import write_project
from querygate.gateway import Gateway
from querygate.project import load_project
from querygate.provision import DEFAULT_GATEWAY_ROLE, setup_database, url_for

ADHOC = ("SELECT c.id, c.full_name, c.email, c.iban, c.ssn FROM customers c "
         "WHERE c.id = {id}")


async def measure(calls: int, work: Callable[[int], Awaitable[object]]) -> tuple[float, ...]:
    for i in range(50):  # warm: pools, plans, prepared statements
        await work(i)
    wall: list[float] = []
    cpu = time.process_time()
    for i in range(calls):
        started = time.perf_counter()
        await work(i)
        wall.append(time.perf_counter() - started)
    cpu = (time.process_time() - cpu) / calls
    wall.sort()
    return statistics.median(wall) * 1000, wall[int(len(wall) * 0.95)] * 1000, cpu * 1000


async def run(project: Path, token: str, calls: int) -> None:
    gateway = await Gateway.open(load_project(project))
    try:
        named = await measure(calls, lambda i: gateway.call(
            token, "get_customer_by_id", {"customer_id": 1 + i % 4000}, "BENCH-1"))
        adhoc = await measure(calls, lambda i: gateway.sql(
            token, ADHOC.format(id=1 + i % 4000), "BENCH-1"))
    finally:
        await gateway.close()
    print(f"querygate from {Path(querygate.__file__).parent}")
    print(f"{'scenario':<22}{'p50 ms':>9}{'p95 ms':>9}{'CPU ms/call':>13}")
    for name, (p50, p95, cpu) in (("named lookup", named), ("ad-hoc lookup", adhoc)):
        print(f"{name:<22}{p50:>9.2f}{p95:>9.2f}{cpu:>13.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--customers", type=int, default=5000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="qg-adhoc-bench-"))
    data = folder / "pg"
    admin = start_embedded(data)
    try:
        with psycopg.connect(admin) as conn:
            load_sample(conn, customers=args.customers)
        setup_database(admin)
        gateway_url = url_for(admin, user=DEFAULT_GATEWAY_ROLE)
        project = write_project(folder, gateway_url)
        token = asyncio.run(demo_tokens(gateway_url))["carol@example.com"]
        asyncio.run(run(project, token, args.calls))
    finally:
        stop_embedded(data)


if __name__ == "__main__":
    main()
