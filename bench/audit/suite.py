"""Benchmarks of the audit log: subject lookup and user search through the API, verify, append.

    .venv/bin/python -m bench.audit.suite prepare --data-dir /tmp/qg-bench   # prints the URL
    .venv/bin/python -m bench.audit.load --url URL --events 10000000
    .venv/bin/python -m bench.audit.suite run --url URL --data-dir /tmp/qg-bench

``prepare`` starts an embedded PostgreSQL in DATA_DIR (WAL and checkpoint settings raised for
bulk loading), creates the database ``audit_bench`` with the demo's sample tables and querygate's
schema. ``run`` serves the demo project against it in process and measures each request's
server-side time (the handler's own ``Server-Timing``), then verify and append throughput.
Timings are printed; nothing here asserts a speed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.harness import arguments, demo_tokens, write_project
from querygate import audit
from querygate.demo import load_sample, start_embedded, stop_embedded
from querygate.provision import DEFAULT_GATEWAY_ROLE, setup_database, url_for

TUNING = {"max_wal_size": "16GB", "checkpoint_timeout": "30min", "shared_buffers": "2GB",
          "maintenance_work_mem": "1GB"}


def prepare(data_dir: Path) -> str:
    server = start_embedded(data_dir / "pg")
    with psycopg.connect(server, autocommit=True) as conn:
        for name, value in TUNING.items():
            conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
    stop_embedded(data_dir / "pg")
    server = start_embedded(data_dir / "pg")
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS audit_bench")
        conn.execute("CREATE DATABASE audit_bench")
    url = url_for(server, dbname="audit_bench")
    with psycopg.connect(url) as conn:
        load_sample(conn, customers=400)
    setup_database(url)
    return url


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return (f"n={len(ordered)} p50={pick(0.50):.2f} p95={pick(0.95):.2f} p99={pick(0.99):.2f} "
            f"max={ordered[-1]:.2f} mean={statistics.fmean(ordered):.2f} ms")


def timing(response: httpx.Response) -> tuple[float, float]:
    parts = dict(p.strip().split(";dur=") for p in response.headers["server-timing"].split(","))
    return float(parts["db"]), float(parts["total"])


async def api_latency(url: str, data_dir: Path, requests: int, customers: int, users: int,
                      months: int) -> None:
    from querygate.api import create_app
    from querygate.gateway import Gateway
    from querygate.project import load_project

    gateway_url = url_for(url, user=DEFAULT_GATEWAY_ROLE)
    project_dir = write_project(data_dir, gateway_url)
    config = project_dir / "querygate.yaml"
    text = config.read_text()
    if "readers:" not in text:
        config.write_text(text.replace("  url: null", "  url: null\n  readers: [compliance]", 1))
    tokens = await demo_tokens(gateway_url)
    import os

    os.environ["QUERYGATE_DATABASE_URL"] = gateway_url
    gateway = await Gateway.open(load_project(project_dir))
    headers = {"Authorization": f"Bearer {tokens['carol@example.com']}"}
    rng = random.Random(7)
    now = dt.datetime.now(dt.UTC)
    transport = httpx.ASGITransport(app=create_app(gateway, lifespan_close=False))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for name, path, params in _workloads(rng, requests, customers, users, months, now):
                db, total, wall, rows = [], [], [], 0
                for p, q in zip(path, params, strict=True):
                    started = time.perf_counter()
                    response = await client.get(p, params=q, headers=headers)
                    wall.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200, response.text
                    d, t = timing(response)
                    db.append(d)
                    total.append(t)
                    rows += response.json()["count"]
                print(f"{name}: {rows / len(db):.1f} events per answer")
                print(f"  query (db)           {percentiles(db)}")
                print(f"  handler (server-side){percentiles(total)}")
                print(f"  in-process round trip {percentiles(wall)}")
    finally:
        await gateway.close()


def _workloads(rng: random.Random, requests: int, customers: int, users: int, months: int,
               now: dt.datetime) -> list[tuple[str, list[str], list[dict[str, str]]]]:
    def month() -> tuple[str, str]:
        back = rng.randrange(1, months)
        start = (now.replace(day=1) - dt.timedelta(days=31 * back)).replace(day=1)
        end = (start + dt.timedelta(days=32)).replace(day=1)
        return start.date().isoformat(), end.date().isoformat()

    subject_paths, subject_params, user_paths, user_params = [], [], [], []
    for _ in range(requests):
        start, end = month()
        subject_paths.append(f"/v1/audit/subjects/customer/{rng.randrange(1, customers + 1)}")
        subject_params.append({"from": start, "to": end})
        start, end = month()
        user_paths.append("/v1/audit/events")
        user_params.append({"user": f"user{rng.randrange(users):04d}@example.com",
                            "from": start, "to": end})
    return [("subject lookup, one month (GET /v1/audit/subjects/customer/X?from&to)",
             subject_paths, subject_params),
            ("user search, one month, first page of 100 (GET /v1/audit/events?user&from&to)",
             user_paths, user_params)]


def _backend_cpu_s(pid: int) -> float:
    """User + system CPU seconds of one server process (the verifier's backend)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def verify_speed(url: str, walks: list[str]) -> None:
    """``audit.verify`` once per walk asked for, in that order, on the same log: the fast walk
    (stored hashes, while the content constraint holds) and the deep one (every event's content
    rendered and hashed), side by side."""
    for walk in walks:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            backend = conn.info.backend_pid
            server_cpu, own_cpu = _backend_cpu_s(backend), time.process_time()
            started = time.perf_counter()
            result = await audit.verify(conn, deep=walk == "deep")
            elapsed = time.perf_counter() - started
            server_cpu = _backend_cpu_s(backend) - server_cpu
            own_cpu = time.process_time() - own_cpu
        checked = max(result.checked, 1)
        print(f"verify ({result.walk} walk): ok={result.ok} {result.checked:,} events in "
              f"{elapsed:.1f} s = {result.checked / elapsed:,.0f} events/s; CPU per event: "
              f"verifier {own_cpu / checked * 1e6:.2f} us, server {server_cpu / checked * 1e6:.2f} us"
              + (f"; structure: {result.structure}" if result.structure else ""), flush=True)


def _event(n: int) -> audit.AuditEvent:
    return audit.AuditEvent(
        occurred_at=dt.datetime.now(dt.UTC), function_name="get_customer_by_id",
        decision="allowed", actor_email=f"writer{n}@example.com",
        subjects=(("customer", str(n)),), parameters={"customer_id": n})


async def _append_batch(pool: Any, events: list[audit.AuditEvent]) -> list[int]:
    """Several events in one statement and transaction: what group commit does."""
    from querygate.audit._store import append_batch

    async with pool.connection() as conn:
        return [receipt.seq for receipt in await append_batch(conn, events)]


async def append_speed(url: str, writers: int, seconds: float, batch: int = 1) -> None:
    from querygate.execute import audit_pool
    from querygate.settings import Settings

    pool = audit_pool(url_for(url, user=DEFAULT_GATEWAY_ROLE),
                      Settings(audit_pool_max_size=writers, audit_timeout_ms=30000))
    await pool.open(wait=True)
    deadline = time.monotonic() + seconds
    seqs: list[int] = []

    async def writer(n: int) -> None:
        while time.monotonic() < deadline:
            if batch == 1:
                seqs.append((await audit.append(pool, _event(n), timeout_s=30)).seq)
            else:
                seqs.extend(await _append_batch(pool, [_event(n) for _ in range(batch)]))

    started = time.monotonic()
    await asyncio.gather(*(writer(n) for n in range(writers)))
    elapsed = time.monotonic() - started
    await pool.close()
    gapless = sorted(seqs) == list(range(min(seqs), min(seqs) + len(seqs)))
    print(f"append: {writers} writers, {batch} event(s) per commit, {len(seqs):,} events in "
          f"{elapsed:.1f} s = "
          f"{len(seqs) / elapsed:,.0f} events/s; gapless={gapless}")


def cli_start() -> None:
    for args in (["--help"], ["audit", "--help"]):
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "querygate", *args], check=True,
                           capture_output=True)
            runs.append(time.perf_counter() - started)
        print(f"CLI start `querygate {' '.join(args)}`: best {min(runs):.2f} s, "
              f"median {statistics.median(runs):.2f} s")


def main() -> None:
    parser = arguments(__doc__, __spec__)
    parser.add_argument("step", choices=["prepare", "run", "api", "verify", "append", "cli"])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/qg-bench"))
    parser.add_argument("--url", help="superuser URL of the bench database")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--writers", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--batch", type=int, default=1,
                        help="events per commit (more than 1 imitates group commit)")
    parser.add_argument("--walks", default="fast,deep",
                        help="verify: the walks to time, in order (fast, deep)")
    args = parser.parse_args()
    if args.step == "prepare":
        print(prepare(args.data_dir))
        return
    if args.step in ("run", "cli"):
        cli_start()
    if args.step in ("run", "api"):
        asyncio.run(api_latency(args.url, args.data_dir, args.requests, args.customers,
                                args.users, args.months))
    if args.step in ("run", "verify"):
        asyncio.run(verify_speed(args.url, args.walks.split(",")))
    if args.step in ("run", "append"):
        asyncio.run(append_speed(args.url, args.writers, args.seconds, args.batch))


if __name__ == "__main__":
    main()
