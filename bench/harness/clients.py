"""Load clients run as processes of their own, so their CPU is not the server's or the bench's.

    python -m bench.harness.clients pg   '[{asyncpg connect kwargs}, "SQL $1", CONC, SECONDS, N]'
    python -m bench.harness.clients http '["URL", "TOKEN", CONC, SECONDS, N]'

``pg`` prepares the statement once per connection and binds 1..N to $1 in turn; ``http`` posts
``{"params": {"customer_id": i}}`` with the bearer token over keep-alive connections. Each
prints one JSON line: calls, p50 and p99 seconds, duration.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import asyncpg
import httpx


async def _pg_worker(kw: dict[str, Any], sql: str, until: float, n: int, seed: int,
                     out: list[float]) -> None:
    conn = await asyncpg.connect(**kw)
    statement = await conn.prepare(sql)
    i = seed
    while time.perf_counter() < until:
        start = time.perf_counter()
        rows = await statement.fetch(1 + i % n)
        assert len(rows) == 1
        out.append(time.perf_counter() - start)
        i += 1
    await conn.close()


async def _http_worker(client: httpx.AsyncClient, url: str, token: str, until: float, n: int,
                       seed: int, out: list[float]) -> None:
    i = seed
    while time.perf_counter() < until:
        start = time.perf_counter()
        r = await client.post(url, json={"params": {"customer_id": 1 + i % n}, "reason": "bench"},
                              headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and len(r.json()["rows"]) == 1, r.text
        out.append(time.perf_counter() - start)
        i += 1


async def main(kind: str, args: list[Any]) -> None:
    out: list[float] = []
    target, secret, concurrency, duration, n = args
    until = time.perf_counter() + duration
    if kind == "pg":
        await asyncio.gather(*(_pg_worker(target, secret, until, n, 97 * w, out)
                               for w in range(concurrency)))
    else:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            await asyncio.gather(*(_http_worker(client, target, secret, until, n, 97 * w, out)
                                   for w in range(concurrency)))
    out.sort()
    print(json.dumps({"calls": len(out), "p50": out[len(out) // 2],
                      "p99": out[int(len(out) * 0.99)], "duration": duration}))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("pg", "http"):
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
