"""A second, deliberately different organisation, to check the rules were not fitted to one.

    .venv/bin/python -m bench.simulate.plain --seed 3 --no-reason 0.10 --out /tmp/plain3
    .venv/bin/python -m bench.detect.evaluate /tmp/plain3 --variant reasons --variant minimal

Unlike ``bench/simulate/run.py``: customers are drawn uniformly (no popular ones), there is
no ticket queue and no ``get_ticket``, every contact has a random reference as
its reason except a share ``--no-reason`` given none, one time zone, no shifts,
DHCP addresses that change at random, analysts who search with one reason for
everything. Planted: two slow browsers (an agent with no reason, an analyst
with the analysts' blanket reason), a bulk export, a stolen token at night,
three short looks at one customer on separate days, and a snooper: an agent who
looks up one of the same three customers once or twice on most working days
for six weeks, with no reason (drawn from a random stream of its own, so the
rest of the organisation is the same with or without it).
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import orjson

from bench.harness.cli import arguments

START = dt.date(2023, 3, 6)
DAYS = 730
ROLES = (("agent", "a", 30), ("analyst", "n", 8), ("admin", "d", 4), ("manager", "m", 3))
LOOKUPS = ("get_customer", "get_orders", "get_payments", "get_notes")


def _stamp(day: dt.date, hour: float) -> str:
    moment = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) + dt.timedelta(hours=hour)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Plain:
    def __init__(self, seed: int, no_reason: float) -> None:
        self.rng = random.Random(seed * 31 + 7)
        self.no_reason = no_reason
        self.staff = [(role, f"{prefix}{i}") for role, prefix, count in ROLES
                      for i in range(count)]
        self.addr = {who: f"192.168.{n // 200 + 1}.{n % 200 + 10}"
                     for n, (_, who) in enumerate(self.staff)}
        self.speed = {who: self.rng.uniform(15, 35) for _, who in self.staff}
        self.away = {who: {START + dt.timedelta(days=self.rng.randrange(DAYS))
                           for _ in range(40)} for _, who in self.staff}
        self.holidays = {START + dt.timedelta(days=self.rng.randrange(DAYS)) for _ in range(20)}
        self.plan = {"intesa": ("a3", 200), "intesa_analyst": ("n2", 450), "bulk": ("a7", 400),
                     "stolen": ("a11", 300), "celebrity": ("a15", 500)}
        self.snooping = random.Random(seed * 97 + 5)
        self.first_snoop: str | None = None
        self.snooper = ("a19", self.snooping.randint(150, 650),
                        [self.snooping.randrange(1, 50_000) for _ in range(3)])

    def event(self, day: dt.date, hour: float, who: str, role: str, function: str,
              customers: list[int], reason: str | None,
              addr: str | None = None) -> tuple[float, dict[str, Any]]:
        return hour, {"occurred_at": _stamp(day, hour), "actor_id": who, "actor_roles": [role],
                      "function_name": function, "decision": "allowed", "reason": reason,
                      "subjects": [{"type": "customer", "id": str(c)} for c in customers],
                      "client_addr": addr or self.addr[who]}

    def honest(self, day: dt.date) -> list[tuple[float, dict[str, Any]]]:
        rng, out = self.rng, []
        for role, who in self.staff:
            if day in self.away[who]:
                continue
            if rng.random() < 0.01:  # a new DHCP lease, at any hour
                self.addr[who] = f"192.168.{rng.randrange(1, 9)}.{rng.randrange(2, 250)}"
            if role in ("agent", "manager"):
                for _ in range(max(0, int(rng.gauss(self.speed[who], 4)))):
                    hour, customer = rng.uniform(8, 16), rng.randrange(1, 50_000)
                    reason = None if rng.random() < self.no_reason else f"T-{rng.randrange(10**6)}"
                    for function in rng.sample(LOOKUPS, rng.randint(1, 3)):
                        out.append(self.event(day, hour, who, role, function, [customer], reason))
                        hour += 0.02
            elif role == "analyst":
                for _ in range(rng.randint(2, 6)):
                    out.append(self.event(day, rng.uniform(8, 17), who, role, "search_customers",
                                          [rng.randrange(1, 50_000)
                                           for _ in range(rng.randint(5, 40))], "ANALYSIS"))
            elif rng.random() < 0.3:
                out.append(self.event(day, rng.uniform(8, 17), who, role, "get_customer",
                                      [rng.randrange(1, 50_000)], "ADMIN"))
        return out

    def insiders(self, k: int, day: dt.date) -> list[tuple[float, dict[str, Any]]]:
        rng, out, working = self.rng, [], day.weekday() < 5 and day not in self.holidays
        for style, (who, start) in self.plan.items():
            role = "analyst" if who.startswith("n") else "agent"
            if style.startswith("intesa") and k >= start and working and day not in self.away[who]:
                reason = "ANALYSIS" if role == "analyst" else None
                out += [self.event(day, rng.uniform(8, 16), who, role, "get_customer",
                                   [rng.randrange(1, 50_000)], reason) for _ in range(7)]
            elif style == "bulk" and start <= k < start + 5 and working:
                out += [self.event(day, rng.uniform(8, 16), who, role, "export_customers",
                                   [rng.randrange(1, 50_000) for _ in range(50)], None)
                        for _ in range(6)]
            elif style == "stolen" and k == start:
                out += [self.event(day, rng.uniform(26, 28), who, role, "get_customer",
                                   [rng.randrange(1, 50_000)], None, "203.0.113.9")
                        for _ in range(40)]
            elif style == "celebrity" and start <= k < start + 7 and working \
                    and day.weekday() in (0, 2, 4):
                hour = rng.uniform(9, 15)
                for function in LOOKUPS[:3]:
                    out.append(self.event(day, hour, who, role, function, [777], None))
                    hour += 0.05
        return out

    def snoop(self, k: int, day: dt.date) -> list[tuple[float, dict[str, Any]]]:
        """The snooper's look-ups of the day: on most working days, one or two, no reason."""
        who, start, targets = self.snooper
        rng = self.snooping
        if not start <= k < start + 42 or day.weekday() >= 5 or day in self.holidays \
                or day in self.away[who] or rng.random() > 0.8:
            return []
        return [self.event(day, rng.uniform(9, 16), who, "agent", rng.choice(LOOKUPS),
                           [rng.choice(targets)], None) for _ in range(rng.randint(1, 2))]

    def truth(self, seed: int) -> dict[str, Any]:
        # the slow browsers go on to the end of the data (``insiders``): an alert on them after
        # 120 days is on the insider, not a false one
        lengths = {"intesa": DAYS, "intesa_analyst": DAYS, "bulk": 5, "stolen": 1,
                   "celebrity": 7}
        return {
            "seed": seed, "holidays": sorted(d.isoformat() for d in self.holidays),
            "staff": [{"actor_id": who, "role": role, "shift": "day", "joined": START.isoformat(),
                       "left": None} for role, who in self.staff],
            "insiders": [{"actor_id": who, "email": who, "role": "agent" if who[0] == "a"
                          else "analyst", "style": style, "variant": "-",
                          "start": (START + dt.timedelta(days=start)).isoformat(),
                          "end": (START + dt.timedelta(days=min(start + lengths[style],
                                                                DAYS - 1))).isoformat(),
                          "events": 0, "subjects": 0}
                         for style, (who, start) in self.plan.items()] +
                        [{"actor_id": self.snooper[0], "email": self.snooper[0], "role": "agent",
                          "style": "snooper", "variant": "persistent",
                          "start": self.first_snoop or "", "end": (START + dt.timedelta(
                              days=self.snooper[1] + 42)).isoformat(), "events": 0,
                          "subjects": 3}],
        }


def main() -> None:
    parser = arguments(__doc__, __spec__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-reason", type=float, default=0.10,
                        help="Share of honest contacts given no reason.")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    plain = Plain(args.seed, args.no_reason)
    args.out.mkdir(parents=True, exist_ok=True)
    seq = 0
    with (args.out / "events.jsonl").open("wb") as sink:
        for k in range(DAYS):
            day = START + dt.timedelta(days=k)
            events = plain.insiders(k, day)
            snooped = plain.snoop(k, day)
            if snooped and plain.first_snoop is None:
                plain.first_snoop = day.isoformat()
            events += snooped
            if day.weekday() < 5 and day not in plain.holidays:
                events += plain.honest(day)
            for _, event in sorted(events, key=lambda pair: pair[0]):
                seq += 1
                sink.write(orjson.dumps({**event, "seq": seq}) + b"\n")
    truth = plain.truth(args.seed) | {"events": seq}
    (args.out / "truth.json").write_bytes(orjson.dumps(truth, option=orjson.OPT_INDENT_2))
    print(f"seed {args.seed}: {seq} events, {len(plain.staff)} people -> {args.out}")


if __name__ == "__main__":
    main()
