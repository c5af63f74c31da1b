"""The snoopers over many seeds: working days to the first alert per style, false alerts per
1,000 honest person-days, and how both move with the snooper's alert threshold.

    for s in 1 2 3 4 5 6 7 8 9 10; do .venv/bin/python -m bench.simulate.run --seed $s --out /tmp/sn$s; done
    .venv/bin/python -m bench.detect.snooper /tmp/sn{1..10}
    .venv/bin/python -m bench.detect.snooper /tmp/sn{1..10} --sweep snoop_floor=1,1.5,2

Each folder is scored by ``detect_eval.score`` (the *full* variant unless ``--variant``).
With ``--sweep NAME=V1,V2,...`` the same folders are scored once per value of one setting.
``--out FILE`` keeps every seed's result (JSON lines), false alerts included, to read later.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson

from bench.detect.evaluate import KEEP, configured, score
from querygate.detect import DetectConfig

ON_TIME = 5  # working days: the bar every planted insider must meet


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per style: the delays, how many were late or missed; false alerts over all seeds."""
    delays: dict[str, list[int | None]] = defaultdict(list)
    for result in results:
        for insider in result["insiders"]:
            style = insider["variant"] if insider["style"] == "snooper" else insider["style"]
            delays[style].append(insider["working_day"])
    days = sum(r["person_days"] for r in results)
    false = sum(r["false_alerts"] for r in results)
    looks = sum(sum(r["lookalikes"].values()) for r in results)
    by_rule: Counter[str] = Counter()
    for r in results:
        by_rule.update(r["false_by_rule"])
    return {
        "seeds": len(results), "person_days": days, "false_alerts": false,
        "per_1000": round(1000 * false / days, 2) if days else None,
        "on_lookalikes": looks,
        "others_per_1000": round(1000 * (false - looks) / days, 2) if days else None,
        "false_by_rule": dict(by_rule.most_common()),
        "styles": {style: _style(found) for style, found in sorted(delays.items())},
    }


def _style(found: list[int | None]) -> dict[str, Any]:
    hit = [d for d in found if d is not None]
    return {"n": len(found), "on_time": sum(d <= ON_TIME for d in hit),
            "missed": len(found) - len(hit),
            "median": statistics.median(hit) if hit else None, "worst": max(hit, default=None),
            "days": found}


def show(label: str, s: dict[str, Any]) -> None:
    late = sum(v["n"] - v["on_time"] for v in s["styles"].values())
    total = sum(v["n"] for v in s["styles"].values())
    print(f"{label}: {total - late} of {total} insiders within {ON_TIME} working days; "
          f"{s['false_alerts']} false alerts over {s['person_days']:,} honest person-days = "
          f"{s['per_1000']} per 1,000 ({s['on_lookalikes']} on look-alikes; others "
          f"{s['others_per_1000']} per 1,000)")
    print(f"  false by rule: {s['false_by_rule']}")
    for style, v in s["styles"].items():
        days = " ".join("-" if d is None else str(d) for d in v["days"])
        print(f"  {style:<16} on time {v['on_time']}/{v['n']}  median {v['median']}  "
              f"worst {v['worst']}  [{days}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--variant", choices=sorted(KEEP), default="full")
    parser.add_argument("--lists", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--sweep", metavar="NAME=V1,V2,...")
    parser.add_argument("--out", type=Path, help="JSON lines: every seed's full result")
    args = parser.parse_args()
    base = configured(args.set, parser)
    runs: list[tuple[str, DetectConfig]] = [("defaults" if not args.set else
                                             " ".join(args.set), base)]
    if args.sweep:
        name, _, values = args.sweep.partition("=")
        runs = [(f"{name}={v}", configured([*args.set, f"{name}={v}"], parser))
                for v in values.split(",")]
    out = args.out.open("ab") if args.out else None
    for label, config in runs:
        results = []
        for folder in args.folders:
            result = score(folder, args.variant, config, args.lists)
            results.append(result)
            if out is not None:
                out.write(orjson.dumps({"run": label, **result}) + b"\n")
                out.flush()
        show(label, summary(results))
        print(f"  settings: {dataclasses.asdict(config) if args.sweep is None and args.set else label}")
    if out is not None:
        out.close()


if __name__ == "__main__":
    main()
