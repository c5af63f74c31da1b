"""The PostgreSQL front door side by side, in one run: direct PostgreSQL, PgBouncer in front of
it, and querygate's front door, for a one-row lookup at concurrency 1 and 16; then 10,000 idle
connections opened against the front door and dropped.

Run by hand, as root or a user who can run pgbouncer (Debian: `apt-get install -y pgbouncer`):

    .venv/bin/python bench/pgwire_bench.py [--duration 8] [--idle 10000]

It starts an embedded PostgreSQL in a temporary folder, loads the demo data set, runs PgBouncer
(transaction pooling, 20 server connections) and `querygate serve` with `postgres:` on as
separate processes, and drives each target with asyncpg clients (one client process per run,
prepared statements, binary results). The same gateway's HTTP API (httpx, keep-alive) runs
beside them as the reference. It prints throughput and p50/p99 latency per target and
concurrency, and the front door's memory with 10,000 idle connections open and after they go.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import psycopg

from querygate.demo import demo_tokens, load_sample, start_embedded, stop_embedded
from querygate.demo._run import write_project
from querygate.provision import DEFAULT_GATEWAY_ROLE, setup_database, url_for

CLIENT = r'''
import asyncio, json, sys, time
import asyncpg

async def worker(kw, sql, until, out):
    conn = await asyncpg.connect(**kw)
    statement = await conn.prepare(sql)
    i = 0
    while time.perf_counter() < until:
        start = time.perf_counter()
        rows = await statement.fetch(1 + i % 400)
        assert len(rows) == 1
        out.append(time.perf_counter() - start)
        i += 1
    await conn.close()

async def main():
    kw, sql, concurrency, duration = json.loads(sys.argv[1])
    out = []
    until = time.perf_counter() + duration
    await asyncio.gather(*(worker(kw, sql, until, out) for _ in range(concurrency)))
    out.sort()
    print(json.dumps({"calls": len(out), "p50": out[len(out) // 2],
                      "p99": out[int(len(out) * 0.99)], "duration": duration}))

asyncio.run(main())
'''


HTTP_CLIENT = r'''
import asyncio, json, sys, time
import httpx

async def worker(client, url, token, until, out):
    i = 0
    while time.perf_counter() < until:
        start = time.perf_counter()
        r = await client.post(url, json={"params": {"customer_id": 1 + i % 400}},
                              headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and len(r.json()["rows"]) == 1
        out.append(time.perf_counter() - start)
        i += 1

async def main():
    url, token, concurrency, duration = json.loads(sys.argv[1])
    out = []
    until = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        await asyncio.gather(*(worker(client, url, token, until, out) for _ in range(concurrency)))
    out.sort()
    print(json.dumps({"calls": len(out), "p50": out[len(out) // 2],
                      "p99": out[int(len(out) * 0.99)], "duration": duration}))

asyncio.run(main())
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port}")


def start_pgbouncer(folder: Path, socket_dir: str, dbname: str, port: int) -> subprocess.Popen[bytes]:
    config = folder / "pgbouncer.ini"
    users = folder / "userlist.txt"
    users.write_text('"postgres" ""\n')
    config.write_text(f"""[databases]
bench = host={socket_dir} dbname={dbname} user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
auth_type = trust
auth_file = {users}
pool_mode = transaction
default_pool_size = 20
max_client_conn = 200
unix_socket_dir =
logfile = {folder / "pgbouncer.log"}
pidfile = {folder / "pgbouncer.pid"}
""")
    pgbouncer = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    command = [pgbouncer, str(config)]
    if os.geteuid() == 0:  # pgbouncer will not run as root: run it as the embedded server's
        # user, who may also open the server's socket in its data folder
        shutil.chown(folder, "pgserver")
        for path in folder.iterdir():
            shutil.chown(path, "pgserver")
        command = ["runuser", "-u", "pgserver", "--", *command]
    proc = subprocess.Popen(command)
    wait_port(port)
    return proc


def run_client(kw: dict[str, object] | str, sql: str, concurrency: int,
               duration: float) -> dict[str, float]:
    """One client process: asyncpg on ``kw``, or httpx on the URL ``kw`` with token ``sql``."""
    script = HTTP_CLIENT if isinstance(kw, str) else CLIENT
    done = subprocess.run([sys.executable, "-c", script,
                           json.dumps([kw, sql, concurrency, duration])],
                          capture_output=True, text=True, check=True, timeout=duration + 60)
    return dict(json.loads(done.stdout))


def idle_connections(port: int, count: int, server: psutil.Process,
                     probe: dict[str, object]) -> list[str]:
    lines = []
    before = server.memory_info().rss / 2**20
    start = time.perf_counter()
    opened = []
    for _ in range(count):
        opened.append(socket.create_connection(("127.0.0.1", port)))
    took = time.perf_counter() - start
    time.sleep(1)
    during = server.memory_info().rss / 2**20
    answered = run_client(probe, "SELECT * FROM get_customer_by_id($1)", 1, 2)["calls"]
    for sock in opened:
        sock.close()
    time.sleep(3)
    after = server.memory_info().rss / 2**20
    lines.append(f"{count} idle connections opened in {took:.2f} s; front door RSS "
                 f"{before:.0f} MiB before, {during:.0f} MiB with them open, {after:.0f} MiB "
                 f"after they were dropped; {answered:.0f} calls answered meanwhile in 2 s")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=8)
    parser.add_argument("--idle", type=int, default=10_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="qg-pgwire-bench-"))
    os.chmod(folder, 0o755)
    data = folder / "pg"
    admin = start_embedded(data)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        url = url_for(admin, dbname="postgres")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
        bench_url = url_for(admin, dbname="bench")
        with psycopg.connect(bench_url) as conn:
            load_sample(conn, customers=5000)
        setup_database(bench_url)
        gateway_url = url_for(bench_url, user=DEFAULT_GATEWAY_ROLE)
        project = write_project(folder, gateway_url)
        pg_port, http_port, bouncer_port = free_port(), free_port(), free_port()
        with (project / "querygate.yaml").open("a") as f:
            f.write(f"\npostgres:\n  listen: 127.0.0.1:{pg_port}\n  max_connections: "
                    f"{args.idle + 100}\n  auth_timeout_s: 60\n")
        tokens = asyncio.run(demo_tokens(gateway_url))
        serve = subprocess.Popen([sys.executable, "-m", "querygate", "serve", "--port",
                                  str(http_port), "--project", str(project)])
        processes.append(serve)
        socket_dir = str(data)
        (folder / "bouncer").mkdir()
        processes.append(start_pgbouncer(folder / "bouncer", socket_dir, "bench", bouncer_port))
        wait_port(pg_port)
        direct = {"host": socket_dir, "user": "postgres", "database": "bench"}
        bouncer = {"host": "127.0.0.1", "port": bouncer_port, "user": "postgres",
                   "database": "bench", "statement_cache_size": 0, "ssl": False}
        front = {"host": "127.0.0.1", "port": pg_port, "user": "dave@example.com",
                 "password": tokens["dave@example.com"], "database": "querygate", "ssl": False}
        lookup = "SELECT * FROM customers WHERE id = $1"
        call = "SELECT * FROM get_customer_by_id($1)"
        print(f"{'target':<28}{'conc':>5}{'calls/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
        for concurrency in (1, 16):
            targets: list[tuple[str, dict[str, object] | str, str]] = [
                ("direct PostgreSQL", direct, lookup),
                ("PgBouncer (transaction)", bouncer, lookup),
                ("querygate front door", front, call),
                ("querygate HTTP API", f"http://127.0.0.1:{http_port}/v1/call/"
                 "get_customer_by_id", tokens["dave@example.com"])]
            for name, kw, sql in targets:
                r = run_client(kw, sql, concurrency, args.duration)
                print(f"{name:<28}{concurrency:>5}{r['calls'] / r['duration']:>10.0f}"
                      f"{r['p50'] * 1000:>9.2f}{r['p99'] * 1000:>9.2f}", flush=True)
        for line in idle_connections(pg_port, args.idle, psutil.Process(serve.pid), front):
            print(line)
    finally:
        for proc in processes:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(20)
        stop_embedded(data)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
