"""Detector throughput on one core, and its memory over a 24-month replay.

    .venv/bin/python -m bench.simulate.run --seed 1 --out /tmp/sim1
    .venv/bin/python -m bench.detect.speed /tmp/sim1/events.jsonl

Pins itself to one CPU, reads the JSONL as ``detect backtest`` does (parse, then
feed), and prints events per second for the whole pipeline and for the detector
alone, then the process's resident memory and the detector's window sizes at
the end of each month of the replay: flat once the windows are full.
"""

from __future__ import annotations

import gc
import os
import resource
import sys
import time
from pathlib import Path

import orjson

from bench.harness.cli import arguments
from querygate.detect import Detector, event_from_json


def rss_mb() -> float:
    """Resident memory now (Linux /proc), else the peak so far."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def replay(path: Path) -> None:
    detector = Detector()
    month, count, alerts = "", 0, 0
    started = time.process_time()
    feeding = 0.0
    print(f"{'month':<8} {'events':>10} {'RSS MB':>8}  detector windows")
    with path.open("rb") as source:
        for line in source:
            event = event_from_json(orjson.loads(line))
            tick = time.perf_counter()
            alerts += len(detector.feed(event))
            feeding += time.perf_counter() - tick
            count += 1
            if event.occurred_at[:7] != month:
                if month:
                    gc.collect()
                    print(f"{month:<8} {count:>10} {rss_mb():>8.1f}  {detector.size()}")
                month = event.occurred_at[:7]
    total = time.process_time() - started
    print(f"{month:<8} {count:>10} {rss_mb():>8.1f}  {detector.size()}")
    print(f"\n{count} events, {alerts} alerts")
    print(f"parse + detect: {count / total:,.0f} events/s on one core ({total:.1f} s CPU)")
    print(f"detector alone: {count / feeding:,.0f} events/s ({feeding:.1f} s)")


def main() -> None:
    parser = arguments(__doc__, __spec__)
    parser.add_argument("events", type=Path)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    print(f"python {sys.version.split()[0]}, one core, {args.events}")
    replay(args.events)


if __name__ == "__main__":
    main()
