"""Memory of one gateway under load: its process, its detector process, its PostgreSQL backends.

Run by hand:  .venv/bin/python -m bench.ops.memory [--seconds 30] [--concurrency 16]

Starts an embedded PostgreSQL with the demo data, `querygate serve` (with its detector), drives
one-row lookups at a fixed concurrency, and samples every second: the gateway's and the
detector's resident and unique memory (psutil), and the unique memory of each PostgreSQL backend
serving the gateway (found by pid in pg_stat_activity). Ends with the calls per second and the
gateway's own /metrics figures for its pools and audit batches. Nothing here asserts a size.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import psycopg
from prometheus_client.parser import text_string_to_metric_families

from bench.gateway.scenarios import prepare
from bench.harness import arguments, postgres, start_serve, stop
from bench.harness.processes import detector_processes

MB = 2**20


def backends(admin: str) -> list[int]:
    with psycopg.connect(admin, autocommit=True) as conn:
        return [r[0] for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name LIKE 'querygate%'")]


def uss(pid: int) -> float:
    try:
        return psutil.Process(pid).memory_full_info().uss / MB
    except psutil.Error:
        return 0.0


async def drive(url: str, token: str, seconds: float, concurrency: int) -> int:
    done = 0
    until = time.monotonic() + seconds

    async def caller(client: httpx.AsyncClient, seed: int) -> None:
        nonlocal done
        n = seed
        while time.monotonic() < until:
            n += concurrency
            response = await client.post("/v1/call/get_customer_by_id", json={
                "params": {"customer_id": 1 + n % 5000}, "reason": "bench"},
                headers={"Authorization": f"Bearer {token}"})
            done += response.status_code == 200

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        await asyncio.gather(*(caller(client, i) for i in range(concurrency)))
    return done


def sample(proc: psutil.Process, admin: str, seconds: float, into: dict[str, list[float]]) -> None:
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        info = proc.memory_full_info()
        into["gateway rss"].append(info.rss / MB)
        into["gateway uss"].append(info.uss / MB)
        for child in detector_processes(proc.pid):
            child_info = child.memory_full_info()
            into["detector rss"].append(child_info.rss / MB)
            into["detector uss"].append(child_info.uss / MB)
        pids = backends(admin)
        into["backends"].append(len(pids))
        into["backend uss"].extend(uss(pid) for pid in pids)
        time.sleep(1)


def main() -> None:
    parser = arguments(__doc__, __spec__)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--database-url", help="a superuser URL (default: embedded PostgreSQL)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qg-ops-memory-") as tmp, \
            postgres(Path(tmp), args.database_url) as pg:
        admin, project, token, _ = prepare(Path(tmp), pg, 5000)
        server = start_serve(project)
        try:
            measure(server.url, server.pid, admin, token, args)
        finally:
            stop(server)


def measure(url: str, pid: int, admin: str, token: str, args: argparse.Namespace) -> None:
    samples: dict[str, list[float]] = {k: [] for k in (
        "gateway rss", "gateway uss", "detector rss", "detector uss", "backends",
        "backend uss")}
    started = time.monotonic()
    sampler = asyncio.to_thread(sample, psutil.Process(pid), admin, args.seconds,
                                samples)

    async def both() -> int:
        calls, _ = await asyncio.gather(drive(url, token, args.seconds, args.concurrency),
                                        sampler)
        return calls

    calls = asyncio.run(both())
    elapsed = time.monotonic() - started
    print(f"{args.seconds:g} s at concurrency {args.concurrency}: {calls} calls, "
          f"{calls / elapsed:.0f} calls/s")
    for name, values in samples.items():
        if values:
            print(f"{name:13} median {statistics.median(values):7.1f}  max {max(values):7.1f}"
                  + ("" if name == "backends" else " MB"))
    scraped = httpx.get(url + "/metrics").text
    for family in text_string_to_metric_families(scraped):
        if family.name in ("querygate_pool_connections", "querygate_pool_max",
                           "querygate_audit_batch_events"):
            for s in family.samples:
                if not s.name.endswith("_bucket") and not s.name.endswith("_created"):
                    print(f"  {s.name}{s.labels or ''} = {s.value:g}")


if __name__ == "__main__":
    main()
