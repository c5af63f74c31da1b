"""A named-function lookup and the same lookup as ad-hoc SQL, through the in-process gateway.

Run by hand, once per build, and compare the two runs side by side:

    .venv/bin/python -m bench.gateway.adhoc [--calls 400]
    cd /tmp && PYTHONPATH=/other/checkout:/this/checkout /this/checkout/.venv/bin/python \
        -m bench.gateway.adhoc          # another build: run outside both, the other one first

It starts an embedded PostgreSQL in a temporary folder, loads the demo data set, and calls
``get_customer_by_id`` and ``SELECT … FROM customers c WHERE c.id = …`` as the demo's
compliance user (an ad-hoc role), one call at a time, each audited as usual. It prints the
median and p95 wall time per call and the gateway process's CPU per call.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import querygate
from bench.harness import arguments, demo_database, demo_tokens, postgres, write_project
from querygate.gateway import Gateway
from querygate.project import load_project
from querygate.provision import DEFAULT_GATEWAY_ROLE, url_for

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
    parser = arguments(__doc__, __spec__)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--database-url", help="a superuser URL; database adhoc_bench is "
                        "dropped and created (default: embedded PostgreSQL)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qg-adhoc-bench-") as tmp, \
            postgres(Path(tmp), args.database_url) as server:
        admin = demo_database(server, "adhoc_bench", args.customers)
        gateway_url = url_for(admin, user=DEFAULT_GATEWAY_ROLE)
        project = write_project(Path(tmp), gateway_url)
        token = asyncio.run(demo_tokens(gateway_url))["carol@example.com"]
        asyncio.run(run(project, token, args.calls))


if __name__ == "__main__":
    main()
