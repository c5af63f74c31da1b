"""`querygate serve` as configured by default, beside a bare endpoint, in one run.

Starts PostgreSQL (embedded in a temporary folder, or --database-url) with the demo data,
the bare endpoint (Starlette + psycopg, `bench.harness.bare`) and `querygate serve` on the
demo project with its defaults: the insider detector runs beside it, every call is audited
before it answers. The PostgreSQL front door listens too. Then, for each scenario:

  cold     the first --cold seconds after each server answered /readyz (one-row lookup, c16)
  warm     after --warmup seconds of unrecorded load, --rounds runs of each target per
           scenario and concurrency, alternating bare and querygate (the order swaps each round)
  export   --export-rows rows streamed, rows/s and the server process's peak resident memory

HTTP load comes from wrk (apt-get install -y wrk), one thread; the front door's from asyncpg in
a client process. CPU per call is split by process: the server (gateway or bare), the detector
(gateway only) and all of PostgreSQL's processes (backends, WAL writer, checkpointer).
Figures are medians over rounds; ratios are querygate / bare, with their range over rounds.
Nothing asserts a speed: run it on a quiet machine and read the noise from the ranges.

Scenarios: lookup, page (50 rows with masks and subjects), orders (100 rows, no masks),
adhoc (ad-hoc SQL), pgwire (the PostgreSQL front door against PostgreSQL itself).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from bench.gateway.scenarios import (
    BENCH_USER,
    DEFAULT,
    SCENARIOS,
    Scenario,
    prepare,
    stream_export,
)
from bench.harness import (
    CpuMeter,
    Figures,
    PeakRss,
    Server,
    pg_client,
    postgres,
    postmaster_pid,
    start_bare,
    start_serve,
    stop,
    wrk,
)
from bench.harness.processes import detector_processes, process_tree
from querygate.provision import DEFAULT_GATEWAY_ROLE, url_for

GROUPS = ("server", "detector", "postgres")


@dataclass
class Target:
    """A server under test, and how to reach it over HTTP and the PostgreSQL protocol."""

    name: str
    server: Server
    pg: dict[str, Any]
    meter: CpuMeter


@dataclass
class Run:
    scenario: str
    conns: int
    target: str
    figures: Figures
    cpu_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class Bench:
    args: argparse.Namespace
    folder: Path
    token: str
    targets: dict[str, Target] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)

    def values(self, scenario: Scenario) -> int:
        return scenario.values if scenario.values > 0 else self.args.customers + scenario.values

    def once(self, scenario: Scenario, conns: int, who: str, seconds: float) -> Run:
        target = self.targets[who]
        gateway = who == "querygate"
        n = self.values(scenario)
        target.meter.start()
        if scenario.name == "pgwire":
            figures = pg_client(target.pg, scenario.gateway if gateway else scenario.bare,
                                conns, seconds, n)
        else:
            body = scenario.body if gateway or not scenario.bare_body else scenario.bare_body
            path = scenario.gateway if gateway else scenario.bare
            figures = wrk(target.server.url + path, body, self.token, n, conns, seconds,
                          self.folder)
        cpu = target.meter.stop()
        return Run(scenario.name, conns, who, figures,
                   {k: v / max(figures.calls, 1) * 1000 for k, v in cpu.items()})


def meter(server_pid: int | None, postmaster: int | None, *, detector: bool) -> CpuMeter:
    import psutil

    return CpuMeter({
        "server": lambda: [psutil.Process(server_pid)] if server_pid else [],
        "detector": lambda: detector_processes(server_pid) if detector and server_pid else [],
        "postgres": lambda: process_tree(postmaster) if postmaster else [],
    })


def direct(dsn: str, seconds: float, n: int) -> Figures:
    """The floor: one connection, a prepared statement, no HTTP."""
    latencies = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.perf_counter()
        deadline, i = started + seconds, 0
        while time.perf_counter() < deadline:
            i += 1
            start = time.perf_counter()
            conn.execute("SELECT * FROM customers WHERE id = %s", (i % n + 1,),
                         prepare=True).fetchall()
            latencies.append((time.perf_counter() - start) * 1000)
        elapsed = time.perf_counter() - started
    latencies.sort()
    return Figures(len(latencies) / elapsed, statistics.median(latencies),
                   latencies[int(len(latencies) * 0.99)], len(latencies))


def export(target: Target, rows: int, token: str) -> tuple[float, float, int]:
    path = "/v1/export/export_orders" if target.name == "querygate" else "/export/export_orders"
    with PeakRss(target.server.pid) as peak:
        count, elapsed = stream_export(target.server.url + path, token, rows)
    return count / elapsed, peak.peak / 2**20, count


def pg_targets(admin: str, pg_port: int, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """asyncpg keyword arguments: PostgreSQL itself (as the gateway's role), and the front door."""
    info = conninfo_to_dict(url_for(admin, user=DEFAULT_GATEWAY_ROLE))
    bare: dict[str, Any] = {"host": info.get("host"), "user": info.get("user"),
                            "database": info.get("dbname"), "password": info.get("password"),
                            "port": int(info.get("port") or 5432)}
    front = {"host": "127.0.0.1", "port": pg_port, "user": BENCH_USER, "password": token,
             "database": "querygate", "ssl": False}
    return {k: v for k, v in bare.items() if v is not None}, front


@contextlib.contextmanager
def servers(bench: Bench, admin: str, project: Path, pg_port: int) -> Iterator[list[Run]]:
    """Start the bare endpoint, then the gateway, each measured cold right after it is ready;
    stop both at the end. Yields the cold runs."""
    args, lookup = bench.args, SCENARIOS["lookup"]
    postmaster = postmaster_pid(admin)
    bare_pg, front_pg = pg_targets(admin, pg_port, bench.token)
    started: list[Server] = []
    cold: list[Run] = []
    try:
        for who in ("bare", "querygate"):
            server = (start_bare(url_for(admin, user=DEFAULT_GATEWAY_ROLE)) if who == "bare"
                      else start_serve(project))
            started.append(server)
            bench.targets[who] = Target(who, server, bare_pg if who == "bare" else front_pg,
                                        meter(server.pid, postmaster,
                                              detector=who == "querygate"))
            if args.cold:
                cold.append(bench.once(lookup, 16, who, args.cold))
        yield cold
    finally:
        for server in started:
            stop(server)


def warm(bench: Bench, names: list[str], concurrency: list[int] | None) -> None:
    args = bench.args
    for name in names:
        scenario = SCENARIOS[name]
        if args.warmup:  # both servers warm: pools grown, statements prepared
            for who in ("bare", "querygate"):
                bench.once(scenario, 16, who, args.warmup)
        for conns in concurrency or scenario.concurrency:
            for r in range(args.rounds):
                for who in ("bare", "querygate") if r % 2 == 0 else ("querygate", "bare"):
                    run = bench.once(scenario, conns, who, args.duration)
                    bench.runs.append(run)
                    f = run.figures
                    print(f"  {name} c{conns} {who} round {r + 1}: {f.rps:.0f}/s p50 "
                          f"{f.p50_ms:.2f} ms p99 {f.p99_ms:.2f} ms, CPU ms/call "
                          + " ".join(f"{g} {run.cpu_ms[g]:.2f}" for g in GROUPS)
                          + (f", {f.errors} non-2xx" if f.errors else ""), flush=True)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gateway.compare", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a superuser URL of the PostgreSQL to use "
                        "(database `bench` is dropped and created); default: embedded")
    parser.add_argument("--customers", type=int, default=25000, help="demo customers to load")
    parser.add_argument("--scenarios", default=",".join(DEFAULT),
                        help=f"comma-separated, of {', '.join(SCENARIOS)} (default: %(default)s)")
    parser.add_argument("--concurrency", help="connections, e.g. 1,16,64, for every scenario "
                        "(default: lookup and pgwire 1,16; the others 16)")
    parser.add_argument("--duration", type=float, default=10, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each target per "
                        "scenario and concurrency, alternating")
    parser.add_argument("--cold", type=float, default=5, help="seconds of load measured right "
                        "after each server is ready (0: none)")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of unrecorded load on "
                        "each server per scenario first")
    parser.add_argument("--export-rows", type=int, default=100_000, help="0: no export")
    parser.add_argument("--detector", choices=["with", "without"], default="with",
                        help="`with` (the default configuration): serve starts the insider "
                        "detector beside it; `without`: left to a `querygate detect run` "
                        "elsewhere")
    parser.add_argument("--server-choice", action="store_true", help="also measure the bare "
                        "endpoint on uvicorn's plain asyncio + h11 (lookup, c16)")
    args = parser.parse_args()
    unknown = set(args.scenarios.split(",")) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    return args


def main() -> None:
    from bench.gateway.figures import print_report, server_choice

    args = parse()
    concurrency = [int(c) for c in args.concurrency.split(",")] if args.concurrency else None
    with tempfile.TemporaryDirectory(prefix="qg-bench-") as tmp, \
            postgres(Path(tmp), args.database_url) as server:
        folder = Path(tmp)
        print(f"preparing {args.customers} customers …", flush=True)
        admin, project, token, pg_port = prepare(folder, server, args.customers,
                                                 detector=args.detector == "with")
        bench = Bench(args, folder, token)
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
              f"PostgreSQL {'at --database-url' if args.database_url else 'embedded'}; "
              f"{args.duration:g} s per run, {args.rounds} rounds; detector {args.detector}",
              flush=True)
        with servers(bench, admin, project, pg_port) as cold:
            floor = direct(url_for(admin, user=DEFAULT_GATEWAY_ROLE), args.duration,
                           args.customers)
            warm(bench, args.scenarios.split(","), concurrency)
            exports = []
            for r in range(args.rounds if args.export_rows else 0):
                for who in ("bare", "querygate") if r % 2 == 0 else ("querygate", "bare"):
                    exports.append((who, *export(bench.targets[who], args.export_rows, token)))
                    print(f"  export {who} round {r + 1}: {exports[-1][1]:.0f} rows/s, "
                          f"peak {exports[-1][2]:.0f} MB", flush=True)
            if args.server_choice:
                server_choice(bench, url_for(admin, user=DEFAULT_GATEWAY_ROLE))
        print_report(bench, cold, floor, exports)
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
