"""Two builds of `querygate serve` side by side: this checkout against another one, in turns.

    git worktree add /tmp/qg-before <commit>
    .venv/bin/python -m bench.gateway.builds /tmp/qg-before [--runs lookup:1,lookup:16,page:16]

Each build gets its own embedded PostgreSQL (its own schema, as its own `setup` made it) with
the demo data and the bench project, detector on, as `bench.gateway.compare` prepares them.
Every build's server runs from its own folder with this virtual environment's packages. For
each scenario and concurrency both servers are warmed, then measured --rounds times each in
alternating order (A B, B A, ...). It prints per run and as medians: req/s, p50, the server
process's CPU per call and its PostgreSQL's CPU per call (all of that cluster's processes).
Any non-2xx answer is reported; a build whose calls fail is not a measurement.

With --exports N, each build then streams the export of --export-rows rows N times, in turns:
the median time to the last row, its range, and the server's and PostgreSQL's CPU per export.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.gateway.scenarios import SCENARIOS, stream_export
from bench.harness import Server, free_port, postgres, postmaster_pid, stop, wait_ready, wrk

_PREPARE = """
import json, sys
from pathlib import Path
from bench.gateway.scenarios import prepare
admin, project, token, _ = prepare(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
print(json.dumps({"admin": admin, "project": str(project), "token": token}))
"""


@dataclass
class Build:
    name: str
    tree: Path
    server: Server | None = None
    postmaster: int | None = None
    token: str = ""


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree)}


@contextlib.contextmanager
def started(build: Build, folder: Path, customers: int) -> Iterator[Build]:
    """The build's PostgreSQL, database, project and server, run from the build's own folder
    (``-m`` puts the working folder first on the path, before PYTHONPATH)."""
    with postgres(folder / "pg") as server:
        out = subprocess.run([sys.executable, "-c", _PREPARE, str(folder), server,
                              str(customers)], cwd=build.tree, env=_env(build.tree),
                             capture_output=True, text=True, check=True).stdout
        info = json.loads(out.strip().splitlines()[-1])
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "querygate", "serve", "--port", str(port),
                                 "--project", info["project"]], cwd=build.tree,
                                env=_env(build.tree), stdout=subprocess.DEVNULL)
        build.server = Server(proc, f"http://127.0.0.1:{port}")
        try:
            wait_ready(build.server.url + "/readyz")
            build.postmaster, build.token = postmaster_pid(info["admin"]), info["token"]
            yield build
        finally:
            stop(build.server)


def _cpu(pid: int | None, *, tree: bool = False) -> float:
    if pid is None:
        return 0.0
    process = psutil.Process(pid)
    total = 0.0
    for p in [process, *(process.children(recursive=True) if tree else [])]:
        with contextlib.suppress(psutil.Error):
            total += sum(p.cpu_times()[:2])
    return total


def measure(builds: list[Build], runs: list[tuple[str, int]], rounds: int, seconds: float,
            folder: Path) -> None:
    medians: dict[tuple[str, int, str], list[tuple[float, ...]]] = {}
    for name, conns in runs:
        scenario = SCENARIOS[name]
        values = scenario.values if scenario.values > 0 else 25_000 + scenario.values
        for build in builds:  # warm: pools grown, statements prepared
            assert build.server is not None
            wrk(build.server.url + scenario.gateway, scenario.body, build.token, values, conns,
                3, folder)
        for r in range(rounds):
            for build in builds if r % 2 == 0 else builds[::-1]:
                assert build.server is not None
                gw, pg = _cpu(build.server.pid), _cpu(build.postmaster, tree=True)
                f = wrk(build.server.url + scenario.gateway, scenario.body, build.token, values,
                        conns, seconds, folder)
                row = (f.rps, f.p50_ms, 1000 * (_cpu(build.server.pid) - gw) / f.calls,
                       1000 * (_cpu(build.postmaster, tree=True) - pg) / f.calls)
                medians.setdefault((name, conns, build.name), []).append(row)
                print(f"  {name} c{conns} {build.name} round {r + 1}: {row[0]:.0f}/s p50 "
                      f"{row[1]:.2f} ms, CPU ms/call server {row[2]:.3f} PostgreSQL {row[3]:.3f}"
                      + (f", {f.errors} non-2xx" if f.errors else ""), flush=True)
    print("\n| scenario | conc | build | req/s | p50 ms | CPU ms/call server | CPU ms/call "
          "PostgreSQL |\n|---|---|---|---|---|---|---|")
    for (name, conns, build_name), rows in medians.items():
        rps, p50, server, pg = (statistics.median(column) for column in zip(*rows, strict=True))
        print(f"| {name} | {conns} | {build_name} | {rps:,.0f} | {p50:.2f} | {server:.3f} | "
              f"{pg:.3f} |")


def _export(build: Build, rows: int) -> float:
    """One export through the build's API, read to the last line; seconds taken."""
    assert build.server is not None
    count, took = stream_export(build.server.url + "/v1/export/export_orders", build.token, rows)
    if count < rows:
        sys.exit(f"{build.name}: the export returned {count} lines, not {rows}")
    return took


def exports(builds: list[Build], rows: int, times: int) -> None:
    """``times`` exports of ``rows`` rows per build, in turns (one warm-up each first)."""
    found: dict[str, list[tuple[float, float, float]]] = {}
    for build in builds:
        _export(build, rows)
    for r in range(times):
        for build in builds if r % 2 == 0 else builds[::-1]:
            assert build.server is not None
            gw, pg = _cpu(build.server.pid), _cpu(build.postmaster, tree=True)
            took = _export(build, rows)
            found.setdefault(build.name, []).append(
                (took, _cpu(build.server.pid) - gw, _cpu(build.postmaster, tree=True) - pg))
            print(f"  export {build.name} {r + 1}: {took * 1000:.0f} ms", flush=True)
    print(f"\n| export of {rows:,} rows | median ms (range) | rows/s | CPU ms/export server | "
          "CPU ms/export PostgreSQL |\n|---|---|---|---|---|")
    for name, runs in found.items():
        took, server, pg = (statistics.median(column) for column in zip(*runs, strict=True))
        low, high = min(r[0] for r in runs), max(r[0] for r in runs)
        print(f"| {name} | {took * 1000:.0f} ({low * 1000:.0f}–{high * 1000:.0f}) | "
              f"{rows / took:,.0f} | {server * 1000:.0f} | {pg * 1000:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway.builds", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path, help="the other checkout (a git worktree)")
    parser.add_argument("--runs", default="lookup:1,lookup:16,page:16",
                        help="scenario:connections, comma-separated (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each build per scenario")
    parser.add_argument("--duration", type=float, default=8, help="seconds per run")
    parser.add_argument("--customers", type=int, default=25_000)
    parser.add_argument("--exports", type=int, default=0,
                        help="exports per build after the runs (0: none)")
    parser.add_argument("--export-rows", type=int, default=100_000)
    args = parser.parse_args()
    runs = [(r.split(":")[0], int(r.split(":")[1])) for r in args.runs.split(",") if r]
    unknown = {name for name, _ in runs} - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    if not (args.before / "querygate").is_dir():
        parser.error(f"{args.before} is not a querygate checkout")
    here = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory(prefix="qg-builds-") as tmp, contextlib.ExitStack() as stack:
        builds = [stack.enter_context(started(Build(name, tree), Path(tmp) / name,
                                              args.customers))
                  for name, tree in (("before", args.before.resolve()), ("this", here))]
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
              f"{args.duration:g} s per run, {args.rounds} rounds", flush=True)
        if runs:
            measure(builds, runs, args.rounds, args.duration, Path(tmp))
        if args.exports:
            exports(builds, args.export_rows, args.exports)


if __name__ == "__main__":
    main()
