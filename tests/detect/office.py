"""A small synthetic office for detector tests: ticket-driven support agents, in time order."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any

START = dt.date(2026, 1, 5)  # a Monday


def moment(day: int, hour: float) -> dt.datetime:
    base = dt.datetime(START.year, START.month, START.day, tzinfo=dt.UTC)
    return base + dt.timedelta(days=day, hours=hour)


def stamp(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def working(day: int) -> bool:
    return (START + dt.timedelta(days=day)).weekday() < 5


@dataclass
class Office:
    """Agents ``a0``…: each working day ~``per_day`` tickets, each a get_ticket and a look-up."""

    agents: int = 6
    per_day: int = 20
    customers: int = 50_000
    seed: int = 1
    events: list[tuple[dt.datetime, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.tickets = 0

    def event(self, when: dt.datetime, actor: str, function: str, customers: list[int], *,
              reason: str | None = None, addr: str | None = None,
              context: dict[str, str] | None = None, decision: str = "allowed") -> None:
        self.events.append((when, {
            "occurred_at": stamp(when), "actor_id": actor, "actor_roles": ["support"],
            "function_name": function, "decision": decision, "reason": reason,
            "subjects": [{"type": "customer", "id": str(c)} for c in customers],
            "client_addr": addr or f"10.0.0.{int(actor[1:]) + 10}", "context": context or {}}))

    def honest(self, days: int) -> Office:
        for day in range(days):
            if not working(day):
                continue
            for n in range(self.agents):
                for _ in range(self.per_day + self.rng.randint(-4, 4)):
                    self.tickets += 1
                    ticket, customer = f"TICKET-{self.tickets}", self.rng.randrange(self.customers)
                    when = moment(day, self.rng.uniform(8, 16.5))
                    self.event(when, f"a{n}", "get_ticket", [customer], reason=ticket)
                    self.event(when + dt.timedelta(seconds=40), f"a{n}", "get_customer_by_id",
                               [customer], reason=ticket)
        return self

    def lines(self) -> list[dict[str, Any]]:
        ordered = sorted(self.events, key=lambda pair: pair[0])
        return [{**event, "seq": seq} for seq, (_, event) in enumerate(ordered, start=1)]
