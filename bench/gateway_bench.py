"""Side by side, in one run: direct psycopg, a bare ASGI endpoint, and querygate's full path.

Run by hand (needs wrk: `apt-get install -y wrk`):

    .venv/bin/python bench/gateway_bench.py [--customers 25000] [--duration 10]

It starts an embedded PostgreSQL in a temporary folder, loads the demo data set, starts the
bare endpoint (bench/bare_app.py) and `querygate serve` as separate processes, and drives both
with wrk (a separate process) for a one-row lookup and a 100-row page at concurrency 1, 16 and
64; then a 100,000-row streamed export. It prints throughput, p50/p99 latency, server CPU per
call and peak server memory, and the ratios querygate / bare and querygate / direct.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import psycopg

from querygate.demo import demo_tokens, load_sample, start_embedded, stop_embedded
from querygate.demo._run import write_project
from querygate.provision import DEFAULT_GATEWAY_ROLE, setup_database, url_for

HERE = Path(__file__).parent
BENCH_SQL = """\
-- name: list_orders_page
-- One page of 100 orders after a given id.
-- param after: text
SELECT o.id, o.customer_id, o.amount, o.status, o.created_at
FROM orders o WHERE o.id > :after ORDER BY o.id LIMIT 100;

-- name: export_orders
-- Orders with the customer's email and IBAN: the export with two masked columns.
-- param n: int
SELECT o.id, o.customer_id, o.amount, o.status, c.email, c.iban
FROM orders o JOIN customers c ON c.id = o.customer_id ORDER BY o.id LIMIT :n;
"""
BENCH_ROLE = """
  bench:
    functions: [get_customer_by_id, list_orders_page, export_orders]
    fields:
      pii.name: allow
      pii.contact: mask.email
      pii.financial: mask.last4
      pii.government_id: omit
      pii.birthdate: mask.year
"""
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
request = function()
  local v = math.random(1, {n})
  return wrk.format(nil, "{path}", nil, string.format('{body}', v))
end
"""
SCENARIOS = {
    "lookup": ("get_customer_by_id", '{"params": {"customer_id": %d}, "reason": "bench"}'),
    "page": ("list_orders_page", '{"params": {"after": "ord_%x"}, "reason": "bench"}'),
}


@dataclass
class Figures:
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float
    peak_mb: float
    errors: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str) -> None:
    for _ in range(300):
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


class Sampler(threading.Thread):
    """Peak resident memory of the largest one of a process and its children (the workers of
    `serve --workers`, the detector's process), sampled every 50 ms: the figure per process."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc, self.peak, self.running = psutil.Process(pid), 0, True

    def rss(self) -> int:
        procs = [self.proc, *self.proc.children(recursive=True)]
        return max((p.memory_info().rss for p in procs if p.is_running()), default=0)

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.rss())
            time.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    proc = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in [proc, *proc.children(recursive=True)])


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(base: str, path: str, body: str, token: str, n: int, conns: int, seconds: int,
        pid: int, folder: Path) -> Figures:
    script = folder / f"wrk_{conns}.lua"
    script.write_text(LUA.replace("{token}", token).replace("{n}", str(n))
                      .replace("{path}", path).replace("{body}", body))
    sampler = Sampler(pid)
    sampler.start()
    before = cpu_seconds(pid)
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "-s",
                          str(script), base], capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pid) - before
    sampler.running = False
    sampler.join()
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.M))  # "1.08s " is padded
    return Figures(float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
                   _ms(latency["50"]), _ms(latency["99"]), cpu / max(total, 1) * 1000,
                   sampler.peak / 2**20, int(errors.group(1)) if errors else 0)


def direct(dsn: str, seconds: float, n: int) -> Figures:
    """The floor: one connection, a prepared statement, no HTTP."""
    latencies = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        deadline = time.perf_counter() + seconds
        i = 0
        start_all = time.perf_counter()
        while time.perf_counter() < deadline:
            i += 1
            start = time.perf_counter()
            conn.execute("SELECT * FROM customers WHERE id = %s", (i % n + 1,),
                         prepare=True).fetchall()
            latencies.append((time.perf_counter() - start) * 1000)
        elapsed = time.perf_counter() - start_all
    latencies.sort()
    return Figures(len(latencies) / elapsed, statistics.median(latencies),
                   latencies[int(len(latencies) * 0.99)], 0.0, 0.0, 0)


def export(base: str, path: str, token: str, rows: int, pid: int) -> tuple[float, float, int]:
    sampler = Sampler(pid)
    sampler.start()
    start, count = time.perf_counter(), 0
    with httpx.stream("POST", base + path, json={"params": {"n": rows}, "reason": "bench"},
                      headers={"Authorization": f"Bearer {token}"}, timeout=600) as response:
        response.raise_for_status()
        for _ in response.iter_lines():
            count += 1
    elapsed = time.perf_counter() - start
    sampler.running = False
    sampler.join()
    return count / elapsed, sampler.peak / 2**20, count


def prepare(folder: Path, customers: int, *, detector: bool = True) -> tuple[str, str, Path, str]:
    server = start_embedded(folder / "pg")
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute("CREATE DATABASE bench")
    admin = url_for(server, dbname="bench")
    with psycopg.connect(admin) as conn:
        load_sample(conn, customers=customers)
    setup_database(admin)
    gateway_url = url_for(admin, user=DEFAULT_GATEWAY_ROLE)
    project = write_project(folder, gateway_url)
    (project / "queries" / "bench.sql").write_text(BENCH_SQL)
    config = project / "querygate.yaml"
    text = config.read_text() + BENCH_ROLE + "settings:\n  max_rows: 100000\n  pool_max_size: 10\n"
    if not detector:  # the detector runs elsewhere (`querygate detect run`), not in the gateway
        text = text.replace("detect:\n  enabled: true", "detect:\n  enabled: false")
    config.write_text(text)
    asyncio.run(demo_tokens(gateway_url))
    with psycopg.connect(gateway_url, autocommit=True) as conn:
        conn.execute("INSERT INTO querygate.users (id, email, roles) VALUES "
                     "('usr_bench', 'bench@example.com', '{bench}') ON CONFLICT DO NOTHING")
    from querygate.identity import issue_token

    async def token() -> str:
        async with await psycopg.AsyncConnection.connect(gateway_url, autocommit=True) as c:
            return (await issue_token(c, "bench@example.com"))[0]

    return admin, gateway_url, project, asyncio.run(token())


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
             for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=25000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--warmup", type=int, default=3,
                        help="seconds of unrecorded load on each server per scenario first")
    parser.add_argument("--export-rows", type=int, default=100_000)
    parser.add_argument("--server-choice", action="store_true",
                        help="Also measure the bare endpoint on uvicorn's plain asyncio + h11, "
                             "against uvloop + httptools (one-row lookup, concurrency 16).")
    parser.add_argument("--detector", choices=["with", "without"], default="with",
                        help="Let `querygate serve` start the insider detector beside it (its "
                             "default: a process of its own on the same machine), or leave it to "
                             "a `querygate detect run` on another machine.")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install -y wrk")
    folder = Path(tempfile.mkdtemp(prefix="qg-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        print(f"preparing {args.customers} customers in {folder} …", flush=True)
        _admin, gateway_url, project, token = prepare(folder, args.customers,
                                                      detector=args.detector == "with")
        bare_port, qg_port = free_port(), free_port()
        procs.append(subprocess.Popen([sys.executable, str(HERE / "bare_app.py"), gateway_url,
                                       str(bare_port)]))
        procs.append(subprocess.Popen([sys.executable, "-m", "querygate", "serve", "--port",
                                       str(qg_port), "--project", str(project)],
                                      stdout=subprocess.DEVNULL))
        bare, qg = f"http://127.0.0.1:{bare_port}", f"http://127.0.0.1:{qg_port}"
        wait_up(bare + "/"), wait_up(qg + "/healthz")
        print(f"machine: {os.cpu_count()} cores; PostgreSQL embedded; wrk -t1; "
              f"{args.duration} s per run; {args.detector} the detector on this machine", flush=True)
        floor = direct(gateway_url, args.duration, args.customers)
        results = [["scenario", "conc", "target", "req/s", "p50 ms", "p99 ms", "CPU ms/call",
                    "peak MB", "non-2xx"]]
        results.append(["lookup", "1", "direct psycopg", f"{floor.rps:.0f}",
                        f"{floor.p50_ms:.2f}", f"{floor.p99_ms:.2f}", "-", "-", "0"])
        ratios = [["scenario", "conc", "querygate / bare (req/s)", "querygate / direct (req/s)",
                   "p50 querygate − bare (ms)"]]
        for scenario, (function, body) in SCENARIOS.items():
            n = args.customers if scenario == "lookup" else 90000
            for base, path, pid in [(bare, f"/call/{function}", procs[0].pid),
                                    (qg, f"/v1/call/{function}", procs[1].pid)]:
                if args.warmup:  # both servers warm (pools grown, statements prepared)
                    wrk(base, path, body, token, n, 16, args.warmup, pid, folder)
            for conns in [int(c) for c in args.concurrency.split(",")]:
                figures = {}
                for name, base, path, pid in [
                        ("bare", bare, f"/call/{function}", procs[0].pid),
                        ("querygate", qg, f"/v1/call/{function}", procs[1].pid)]:
                    f = wrk(base, path, body, token, n, conns, args.duration, pid, folder)
                    figures[name] = f
                    results.append([scenario, str(conns), name, f"{f.rps:.0f}",
                                    f"{f.p50_ms:.2f}", f"{f.p99_ms:.2f}", f"{f.cpu_ms:.2f}",
                                    f"{f.peak_mb:.0f}", str(f.errors)])
                    print(" | ".join(results[-1]), flush=True)
                ratios.append([scenario, str(conns),
                               f"{figures['querygate'].rps / figures['bare'].rps:.0%}",
                               f"{figures['querygate'].rps / floor.rps:.0%}"
                               if scenario == "lookup" else "-",
                               f"{figures['querygate'].p50_ms - figures['bare'].p50_ms:+.2f}"])
        if args.server_choice:
            plain_port = free_port()
            procs.append(subprocess.Popen([sys.executable, str(HERE / "bare_app.py"),
                                           gateway_url, str(plain_port), "asyncio", "h11"]))
            plain = f"http://127.0.0.1:{plain_port}"
            wait_up(plain + "/")
            function, body = SCENARIOS["lookup"]
            for name, base, pid in [("uvloop + httptools", bare, procs[0].pid),
                                    ("asyncio + h11", plain, procs[-1].pid)]:
                f = wrk(base, f"/call/{function}", body, token, args.customers, 16,
                        args.duration, pid, folder)
                print(f"server choice, bare lookup c16, {name}: {f.rps:.0f} req/s, "
                      f"p50 {f.p50_ms:.2f} ms, CPU {f.cpu_ms:.2f} ms/call", flush=True)
        exports = [["target", "rows", "rows/s", "peak MB"]]
        for name, base, path, pid in [("bare", bare, "/export/export_orders", procs[0].pid),
                                      ("querygate", qg, "/v1/export/export_orders",
                                       procs[1].pid)]:
            rate, peak, count = export(base, path, token, args.export_rows, pid)
            exports.append([name, str(count), f"{rate:.0f}", f"{peak:.0f}"])
            print(" | ".join(exports[-1]), flush=True)
        print("\n" + table(results) + "\n\n" + table(ratios) + "\n\n" + table(exports))
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=20)
        stop_embedded(folder / "pg")
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
