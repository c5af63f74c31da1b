"""Score the detector on simulated organisations: days to first alert, false alerts.

    .venv/bin/python -m bench.simulate.run --seed 1 --out /tmp/sim1
    .venv/bin/python -m bench.detect.evaluate /tmp/sim1 --variant reasons

Variants strip the events down to what an export may carry:
``full`` (reasons, addresses, roles and the gateway's purpose verdict),
``reasons`` (no purpose verdict: purpose checks off), ``minimal`` (only the five
fields the backtest contract requires).

For each planted insider: the working day of the first alert counted from the
day they started, in days they were at work (1 = the same day; a holiday taken
right after starting does not count). False alerts: every alert on an honest
person, or on an insider outside their active window, per 1,000 active
person-days of honest work.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from bench.harness.cli import arguments
from querygate.detect import Alert, DetectConfig, Detector, event_from_json

KEEP = {
    "full": None,
    "reasons": ("occurred_at", "actor_id", "actor_roles", "function_name", "decision", "reason",
                "subjects", "client_addr", "seq"),
    "minimal": ("occurred_at", "actor_id", "function_name", "decision", "subjects"),
}
GRACE_DAYS = 5  # alerts this long after an insider's last act still count as theirs


def _date(value: str) -> dt.date:
    return dt.date.fromisoformat(value[:10])


def lists_of(folder: Path) -> Any:
    """The organisation's watch list and relationships, as the simulator wrote them."""
    from querygate.detect import Lists, WatchSettings, lists_from_files

    watch, links = folder / "watch.csv", folder / "relationships.csv"
    return lists_from_files(WatchSettings(), watch if watch.exists() else None,
                            links if links.exists() else None) if watch.exists() or \
        links.exists() else Lists()


def run(folder: Path, variant: str, config: DetectConfig,
        lists: bool = False) -> tuple[list[Alert], set[tuple[str, dt.date]], float]:
    keep = KEEP[variant]
    detector = Detector(config, lists_of(folder)) if lists else Detector(config)
    alerts: list[Alert] = []
    days: set[tuple[str, dt.date]] = set()
    started = time.process_time()
    with (folder / "events.jsonl").open("rb") as source:
        for line in source:
            obj: dict[str, Any] = orjson.loads(line)
            if keep is not None:
                obj = {k: obj[k] for k in keep if k in obj}
            event = event_from_json(obj)
            days.add((event.actor, _date(event.occurred_at)))
            alerts += detector.feed(event)
    return alerts, days, time.process_time() - started


def _at_work(present: list[dt.date], when: dt.date, off: set[dt.date]) -> int:
    """Working days the person was at work from their start to ``when`` (1 = the first).

    An alert raised on a day they were away (raised when their day closed) counts
    as their next working day.
    """
    worked = [d for d in present if d <= when and d.weekday() < 5 and d not in off]
    return max(1, len(worked) + (when not in present))


def score(folder: Path, variant: str, config: DetectConfig,
          lists: bool = False) -> dict[str, Any]:
    truth = orjson.loads((folder / "truth.json").read_bytes())
    off = {_date(d) for d in truth["holidays"]}
    alerts, days, cpu = run(folder, variant, config, lists)

    def working(first: dt.date, last: dt.date) -> int:
        count, day = 0, first
        while day <= last:
            count += day.weekday() < 5 and day not in off
            day += dt.timedelta(days=1)
        return count

    windows = {i["actor_id"]: (_date(i["start"]), _date(i["end"]) + dt.timedelta(days=GRACE_DAYS))
               for i in truth["insiders"]}
    insiders, false = [], []
    for alert in alerts:
        window = windows.get(alert.actor_id)
        when = _date(alert.raised_at)
        if window is None or not window[0] <= when <= window[1]:
            false.append(alert)
    for insider in truth["insiders"]:
        start, end = windows[insider["actor_id"]]
        mine = [a for a in alerts if a.actor_id == insider["actor_id"]
                and start <= _date(a.raised_at) <= end]
        first = mine[0] if mine else None
        first_day = _date(first.raised_at) if first else None
        present = sorted(d for a, d in days if a == insider["actor_id"] and start <= d)
        insiders.append({**insider, "first_alert": first.raised_at if first else None,
                         "rule": first.rule if first else None,
                         "calendar_working_day": working(start, first_day) if first_day else None,
                         "working_day": _at_work(present, first_day, off) if first_day else None})
    honest_days = sum(1 for actor, day in days
                      if actor not in windows or not windows[actor][0] <= day <= windows[actor][1])
    return {"seed": truth["seed"], "variant": variant + ("+lists" if lists else ""),
            "events": truth["events"],
            "people": len(truth["staff"]), "person_days": honest_days,
            "false_alerts": len(false), "per_1000": round(1000 * len(false) / honest_days, 2),
            "false_by_rule": dict(Counter(a.rule for a in false)), "insiders": insiders,
            "lookalikes": _lookalikes(truth, false),
            "cpu_s": round(cpu, 1), "false": [a.to_json() for a in false]}


def _lookalikes(truth: dict[str, Any], false: list[Alert]) -> dict[str, int]:
    """False alerts on the honest people whose work returns to the same subjects, by kind."""
    found: Counter[str] = Counter({look["style"]: 0 for look in truth.get("lookalikes", [])})
    for look in truth.get("lookalikes", []):
        found[look["style"]] += sum(a.actor_id == look["actor_id"] for a in false)
    return dict(found)


def report(result: dict[str, Any], verbose: bool) -> None:
    print(f"seed {result['seed']} variant {result['variant']}: {result['events']} events, "
          f"{result['people']} people, {result['person_days']} honest person-days, "
          f"detector {result['cpu_s']} s CPU")
    for i in result["insiders"]:
        found = f"working day {i['working_day']} ({i['rule']})" if i["first_alert"] else "NOT ALERTED"
        print(f"  {i['style']:<13} {i['variant']:<13} {i['role']:<8} from {i['start']}: {found}")
    print(f"  false alerts: {result['false_alerts']} = {result['per_1000']} per 1,000 person-days "
          f"{result['false_by_rule']}")
    if result["lookalikes"]:
        print(f"  on honest look-alikes: {result['lookalikes']}")
    if verbose:
        for alert in result["false"]:
            print("    ", alert["raised_at"], alert["actor_id"], alert["rule"], alert["summary"])


def configured(settings: list[str], parser: argparse.ArgumentParser) -> DetectConfig:
    """The default settings with ``NAME=VALUE`` changes, each value of the setting's type."""
    defaults = DetectConfig()
    changes: dict[str, Any] = {}
    for item in settings:
        name, _, value = item.partition("=")
        current = getattr(defaults, name, None)
        if current is None or name == "disabled_rules":
            parser.error(f"--set {item}: no numeric setting named {name!r}")
        try:
            changes[name] = type(current)(value)
        except ValueError:
            parser.error(f"--set {item}: {value!r} is not a {type(current).__name__}")
    return dataclasses.replace(defaults, **changes)


def main() -> None:
    parser = arguments(__doc__, __spec__)
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--variant", choices=sorted(KEEP), action="append")
    parser.add_argument("--json", action="store_true", help="One JSON result per line.")
    parser.add_argument("-v", "--verbose", action="store_true", help="List the false alerts.")
    parser.add_argument("--lists", action="store_true",
                        help="Give the detector the folder's watch.csv and relationships.csv.")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="Change one detect: setting for this run, e.g. --set isolated_tail=1e-5")
    args = parser.parse_args()
    config = configured(args.set, parser)
    for folder in args.folders:
        for variant in args.variant or ["full", "reasons", "minimal"]:
            result = score(folder, variant, config, args.lists)
            if args.json:
                print(orjson.dumps({k: v for k, v in result.items() if k != "false"}).decode())
            else:
                report(result, args.verbose)


if __name__ == "__main__":
    main()
