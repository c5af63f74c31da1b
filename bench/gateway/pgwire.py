"""The PostgreSQL front door side by side, in one run: direct PostgreSQL, PgBouncer in front of
it, and querygate's front door, for a one-row lookup at concurrency 1 and 16; then 10,000 idle
connections opened against the front door and dropped.

Run by hand, as root or a user who can run pgbouncer (Debian: `apt-get install -y pgbouncer`),
from the repository root:

    .venv/bin/python -m bench.gateway.pgwire [--duration 8] [--idle 10000]

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
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil
from psycopg.conninfo import conninfo_to_dict

from bench.harness import (
    Figures,
    arguments,
    demo_database,
    demo_tokens,
    free_port,
    http_client,
    pg_client,
    postgres,
    start_serve,
    stop,
    wait_port,
    write_project,
)
from querygate.provision import DEFAULT_GATEWAY_ROLE, url_for


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
    answered = pg_client(probe, "SELECT * FROM get_customer_by_id($1)", 1, 2, 400).calls
    for sock in opened:
        sock.close()
    time.sleep(3)
    after = server.memory_info().rss / 2**20
    lines.append(f"{count} idle connections opened in {took:.2f} s; front door RSS "
                 f"{before:.0f} MiB before, {during:.0f} MiB with them open, {after:.0f} MiB "
                 f"after they were dropped; {answered:.0f} calls answered meanwhile in 2 s")
    return lines


def main() -> None:
    parser = arguments(__doc__, __spec__)
    parser.add_argument("--duration", type=float, default=8, help="seconds per run")
    parser.add_argument("--idle", type=int, default=10_000, help="idle connections to open")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qg-pgwire-bench-") as tmp:
        folder = Path(tmp)
        os.chmod(folder, 0o755)  # pgbouncer, as the embedded server's user, reads its files here
        with postgres(folder) as server:
            run(folder, server, args)


def run(folder: Path, server: str, args: argparse.Namespace) -> None:
    bench_url = demo_database(server, "bench", 5000)
    gateway_url = url_for(bench_url, user=DEFAULT_GATEWAY_ROLE)
    pg_port, bouncer_port = free_port(), free_port()
    project = write_project(folder, gateway_url, config=(
        f"\npostgres:\n  listen: 127.0.0.1:{pg_port}\n  max_connections: {args.idle + 100}\n"
        "  auth_timeout_s: 60\n"))
    tokens = asyncio.run(demo_tokens(gateway_url))
    serve = start_serve(project)
    socket_dir = str(conninfo_to_dict(server)["host"])
    (folder / "bouncer").mkdir()
    bouncer = start_pgbouncer(folder / "bouncer", socket_dir, "bench", bouncer_port)
    try:
        wait_port(pg_port)
        direct = {"host": socket_dir, "user": "postgres", "database": "bench"}
        pooled = {"host": "127.0.0.1", "port": bouncer_port, "user": "postgres",
                  "database": "bench", "statement_cache_size": 0, "ssl": False}
        front = {"host": "127.0.0.1", "port": pg_port, "user": "dave@example.com",
                 "password": tokens["dave@example.com"], "database": "querygate", "ssl": False}
        lookup = "SELECT * FROM customers WHERE id = $1"
        call = "SELECT * FROM get_customer_by_id($1)"
        print(f"{'target':<28}{'conc':>5}{'calls/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
        for concurrency in (1, 16):
            targets: list[tuple[str, Callable[[int], Figures]]] = [
                    ("direct PostgreSQL", lambda c: pg_client(direct, lookup, c, args.duration, 400)),
                    ("PgBouncer (transaction)",
                     lambda c: pg_client(pooled, lookup, c, args.duration, 400)),
                    ("querygate front door", lambda c: pg_client(front, call, c, args.duration, 400)),
                    ("querygate HTTP API", lambda c: http_client(
                        serve.url + "/v1/call/get_customer_by_id", tokens["dave@example.com"], c,
                        args.duration, 400))]
            for name, figures in targets:
                f = figures(concurrency)
                print(f"{name:<28}{concurrency:>5}{f.rps:>10.0f}{f.p50_ms:>9.2f}{f.p99_ms:>9.2f}",
                      flush=True)
        for line in idle_connections(pg_port, args.idle, psutil.Process(serve.pid), front):
            print(line)
    finally:
        stop(serve)
        bouncer.terminate()
        bouncer.wait(20)


if __name__ == "__main__":
    main()
