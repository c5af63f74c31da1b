"""Soak: a long run against a real `querygate serve`, then the books are checked.

Run by hand:  .venv/bin/python bench/soak.py [--minutes 10] [--concurrency 16]

Every 200 response must have exactly one audit event (by its audit_id), the chain must
verify, and the gateway's resident memory must stay flat (the last quarter of the run's
samples against the first quarter after warm-up).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import psycopg

from querygate import audit
from querygate.demo import stop_embedded

sys.path.insert(0, str(Path(__file__).parent))
from gateway_bench import free_port, prepare, wait_up

CALLS = [
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="qg-soak-"))
    proc = None
    try:
        admin, gateway_url, project, token = prepare(folder, 5000)
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "querygate", "serve", "--port",
                                 str(port), "--project", str(project)],
                                stdout=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        wait_up(url + "/healthz")
        ok, statuses, rss = asyncio.run(drive(url, token, args.minutes, args.concurrency,
                                              proc.pid))
        with psycopg.connect(admin) as conn:
            counts = dict(conn.execute(
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
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=20)
        stop_embedded(folder / "pg")


if __name__ == "__main__":
    main()
