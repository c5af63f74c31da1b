"""The tables `bench.gateway.compare` prints at the end: medians over rounds, and ratios."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

from bench.harness import Figures, start_bare, stop, table, wrk

if TYPE_CHECKING:
    from bench.gateway.compare import Bench, Run

GROUPS = ("server", "detector", "postgres")


def _median(runs: list[Run], attr: str) -> float:
    return float(statistics.median(getattr(r.figures, attr) for r in runs))


def _cpu(runs: list[Run], group: str) -> float:
    return statistics.median(r.cpu_ms[group] for r in runs)


def _row(label: list[str], runs: list[Run]) -> list[str]:
    return [*label, f"{_median(runs, 'rps'):.0f}", f"{_median(runs, 'p50_ms'):.2f}",
            f"{_median(runs, 'p99_ms'):.2f}", *(f"{_cpu(runs, g):.2f}" for g in GROUPS),
            str(sum(r.figures.errors for r in runs))]


HEAD = ["req/s", "p50 ms", "p99 ms", "CPU server", "CPU detector", "CPU PostgreSQL", "non-2xx"]


def warm_tables(runs: list[Run]) -> tuple[list[list[str]], list[list[str]]]:
    figures = [["scenario", "conc", "target", *HEAD]]
    ratios = [["scenario", "conc", "querygate / bare req/s", "range over rounds",
               "p50 querygate − bare ms", "CPU ms/call querygate / bare (all processes)",
               "detector / gateway CPU"]]
    keys = list(dict.fromkeys((r.scenario, r.conns) for r in runs))
    for scenario, conns in keys:
        both = {who: [r for r in runs if (r.scenario, r.conns, r.target) ==
                      (scenario, conns, who)] for who in ("bare", "querygate")}
        for who, mine in both.items():
            figures.append(_row([scenario, str(conns), who], mine))
        qg, bare = both["querygate"], both["bare"]
        per_round = [q.figures.rps / b.figures.rps for q, b in zip(qg, bare, strict=True)]
        total = {who: sum(_cpu(mine, g) for g in GROUPS) for who, mine in both.items()}
        ratios.append([scenario, str(conns), f"{_median(qg, 'rps') / _median(bare, 'rps'):.0%}",
                       f"{min(per_round):.0%}–{max(per_round):.0%}",
                       f"{_median(qg, 'p50_ms') - _median(bare, 'p50_ms'):+.2f}",
                       f"{total['querygate']:.2f} / {total['bare']:.2f}",
                       f"{_cpu(qg, 'detector') / max(_cpu(qg, 'server'), 1e-9):.0%}"])
    return figures, ratios


def print_report(bench: Bench, cold: list[Run], floor: Figures,
                 exports: list[tuple[str, float, float, int]]) -> None:
    print("\nCold: the first seconds after /readyz answered (one-row lookup, c16)")
    rows = [["target", "ready after s", *HEAD]]
    for run in cold:
        ready = bench.targets[run.target].server.ready_s
        rows.append(_row([run.target, f"{ready:.1f}"], [run]))
    print(table(rows))
    figures, ratios = warm_tables(bench.runs)
    print("\nWarm: medians over rounds; CPU in ms per call")
    print(table(figures))
    print(f"\nThe floor, one connection, prepared SELECT, no HTTP: {floor.rps:.0f}/s, "
          f"p50 {floor.p50_ms:.2f} ms, p99 {floor.p99_ms:.2f} ms")
    print("\nRatios")
    print(table(ratios))
    if exports:
        rows = [["target", "rows", "rows/s (median)", "peak RSS MB (server process, max)"]]
        rate = {}
        for who in ("bare", "querygate"):
            mine = [e for e in exports if e[0] == who]
            rate[who] = statistics.median(e[1] for e in mine)
            rows.append([who, str(mine[0][3]), f"{rate[who]:.0f}",
                         f"{max(e[2] for e in mine):.0f}"])
        print("\nExport")
        print(table(rows))
        print(f"export querygate / bare rows/s: {rate['querygate'] / rate['bare']:.0%}")


def server_choice(bench: Bench, dsn: str) -> None:
    """The bare endpoint's lookup at c16 on uvloop + httptools against asyncio + h11."""
    args = bench.args
    body = '{"params": {"customer_id": %d}, "reason": "bench"}'
    plain = start_bare(dsn, loop="asyncio", http="h11")
    try:
        for name, url in [("uvloop + httptools", bench.targets["bare"].server.url),
                          ("asyncio + h11", plain.url)]:
            f = wrk(url + "/call/get_customer_by_id", body, bench.token, args.customers, 16,
                    args.duration, bench.folder)
            print(f"server choice, bare lookup c16, {name}: {f.rps:.0f} req/s, "
                  f"p50 {f.p50_ms:.2f} ms", flush=True)
    finally:
        stop(plain)
