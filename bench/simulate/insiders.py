"""Planted insiders: the four styles of the issue, on top of their honest work.

- ``slow_browser``: the Intesa numbers, about seven customers a working day with
  no ticket, for months; the reason is left out, reused from a ticket being
  worked that day, or made up in the ticket numbering's range.
- ``bulk_export``: a leaver pulls hundreds of customers a day in their last week.
- ``stolen_token``: someone else uses a person's token at night from an
  address the company has never seen.
- ``celebrity``: a support agent keeps looking at one or two customers (a famous
  one, a colleague) on several days of a week, with no ticket for them.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from bench.simulate.org import SHIFTS, Org, Person
from bench.simulate.work import Day, Work, poisson

PROFILE = ("get_customer_by_id", "list_customer_orders", "list_customer_payments",
           "get_account_balances", "list_customer_tickets")


@dataclass
class Insider:
    style: str
    variant: str
    person: Person
    start: dt.date  # first day of the plan; ``first`` is the first day anything happened
    end: dt.date
    days: set[dt.date] = field(default_factory=set)
    targets: list[int] = field(default_factory=list)
    addr: str = ""
    first: dt.date | None = None
    last: dt.date | None = None
    events: int = 0
    subjects: set[int] = field(default_factory=set)

    def truth(self) -> dict[str, object]:
        return {"actor_id": self.person.id, "email": self.person.email, "role": self.person.role,
                "style": self.style, "variant": self.variant,
                "start": (self.first or self.start).isoformat(),
                "end": (self.last or self.end).isoformat(), "events": self.events,
                "subjects": len(self.subjects)}


def _reason(work: Work, insider: Insider, rng: random.Random) -> str | None:
    if insider.variant == "none":
        return None
    if insider.variant == "reuse":
        worked = work.worked_today.get(insider.person.id) or work.recent[-50:]
        return rng.choice(worked).id if worked else None
    return f"TICKET-{rng.randint(work.next_ticket - 20_000, work.next_ticket + 2_000)}"


def _pick(rng: random.Random, people: list[Person], taken: set[str]) -> Person:
    choices = [p for p in people if p.id not in taken]
    person = rng.choice(choices)
    taken.add(person.id)
    return person


def plant(org: Org, rng: random.Random) -> list[Insider]:
    cal = org.calendar
    span = (cal.end - cal.start).days
    taken: set[str] = set()
    found: list[Insider] = []

    def tenured(role: str, at: dt.date, shifts: tuple[str, ...] = ("early", "day", "late"),
                stay: int = 150) -> list[Person]:
        return [p for p in org.people if p.role == role and p.shift in shifts
                and p.joined <= at - dt.timedelta(days=60)
                and (p.left is None or p.left >= at + dt.timedelta(days=stay))
                and not p.shift_changes]

    for variant in ("none", "reuse", "invented"):
        start = cal.start + dt.timedelta(days=rng.randint(90, span - 150))
        person = _pick(rng, tenured("support", start), taken)
        found.append(Insider("slow_browser", variant, person, start,
                             start + dt.timedelta(days=120)))
    found.append(_bulk(org, rng, taken))
    start = cal.start + dt.timedelta(days=rng.randint(90, span - 30))
    victim = _pick(rng, tenured("support", start) + tenured("billing", start, stay=30), taken)
    nights = rng.randint(1, 3)
    found.append(Insider("stolen_token", rng.choice(["none", "copied_ticket"]), victim, start,
                         start + dt.timedelta(days=nights - 1),
                         days={start + dt.timedelta(days=i) for i in range(nights)},
                         addr=f"185.220.{rng.randrange(256)}.{rng.randrange(1, 255)}"))
    start = cal.start + dt.timedelta(days=rng.randint(90, span - 30))
    peeker = _pick(rng, tenured("support", start, stay=30), taken)
    window = [d for d in (start + dt.timedelta(days=i) for i in range(14))
              if cal.working(d) and peeker.present(d)][:5]
    found.append(Insider("celebrity", rng.choice(["none", "reuse"]), peeker, start, window[-1],
                         days=set(rng.sample(window, rng.randint(2, min(4, len(window))))),
                         targets=[1 + rng.randrange(org.customers(start))
                                  for _ in range(rng.randint(1, 2))]))
    return found


def _bulk(org: Org, rng: random.Random, taken: set[str]) -> Insider:
    """A leaver (support or billing) exporting customers in their last five working days."""
    cal = org.calendar
    people = [p for p in org.people if p.role in ("support", "billing") and p.id not in taken
              and p.left is not None and p.joined + dt.timedelta(days=120) <= p.left
              and cal.start + dt.timedelta(days=90) <= p.left <= cal.end - dt.timedelta(days=5)
              and p.shift != "night"]
    person = rng.choice(people)
    taken.add(person.id)
    assert person.left is not None
    days: list[dt.date] = []
    day = person.left
    while len(days) < 5:
        if cal.working(day):
            days.append(day)
            person.away.discard(day)
        day -= dt.timedelta(days=1)
    return Insider("bulk_export", rng.choice(["sweep", "loop"]), person, days[-1], person.left,
                   days=set(days))


def act(insider: Insider, d: Day, work: Work, rng: random.Random) -> None:
    """Emit what the insider does on ``d`` (nothing outside their plan)."""
    if not insider.start <= d.date <= insider.end:
        return
    if insider.style != "stolen_token" and not insider.person.present(d.date):
        return  # a stolen token works while its owner is on holiday, too
    before = len(d.events)
    if insider.style == "slow_browser" and work.org.calendar.working(d.date):
        _browse(insider, d, work, rng)
    elif insider.style == "bulk_export" and d.date in insider.days:
        _export(insider, d, work, rng)
    elif insider.style == "stolen_token" and d.date in insider.days:
        _night(insider, d, work, rng)
    elif insider.style == "celebrity" and d.date in insider.days:
        _peek(insider, d, work, rng)
    if len(d.events) > before:
        insider.first = insider.first or d.date
        insider.last = d.date
        insider.events += len(d.events) - before
        for _, event in d.events[before:]:
            insider.subjects.update(int(s["id"]) for s in event["subjects"])  # type: ignore


def _browse(insider: Insider, d: Day, work: Work, rng: random.Random) -> None:
    person, addr = insider.person, work.addr(insider.person, d.date)
    for _ in range(poisson(rng, 7)):
        customer, ts = work.any_customer(d.date), work.moment(d, person)
        reason = _reason(work, insider, rng)
        for name in [PROFILE[0], *rng.sample(PROFILE[1:], poisson(rng, 0.9) % 4)]:
            d.emit(ts, person, name, [customer], reason=reason, addr=addr, purpose="miss")
            ts += rng.uniform(15, 120)


def _export(insider: Insider, d: Day, work: Work, rng: random.Random) -> None:
    person, addr = insider.person, work.addr(insider.person, d.date)
    wanted, ts = rng.randint(150, 500), work.moment(d, person)
    reason = None if rng.random() < 0.5 else _reason_ticket(work, person, rng)
    while wanted > 0:
        if insider.variant == "sweep":
            batch = [work.any_customer(d.date) for _ in range(50)]
            d.emit(ts, person, "search_customers", batch, reason=reason, addr=addr)
        else:
            batch = [work.any_customer(d.date)]
            d.emit(ts, person, "get_customer_by_id", batch, reason=reason, addr=addr,
                   purpose="miss")
        wanted -= len(batch)
        ts += rng.uniform(3, 30)


def _reason_ticket(work: Work, person: Person, rng: random.Random) -> str | None:
    worked = work.worked_today.get(person.id)
    return rng.choice(worked).id if worked else None


def _night(insider: Insider, d: Day, work: Work, rng: random.Random) -> None:
    person = insider.person
    ts = d.midnight + 86_400 + rng.uniform(0.5, 3.5) * 3600
    for _ in range(rng.randint(0, 3)):
        d.emit(ts, person, "revenue_by_plan", [], reason=None, addr=insider.addr,
               decision="denied")
        ts += rng.uniform(5, 60)
    for _ in range(rng.randint(15, 60)):
        reason = None if insider.variant == "none" else rng.choice(work.recent[-300:]).id
        if rng.random() < 0.2:
            batch = [work.any_customer(d.date) for _ in range(rng.randint(5, 50))]
            d.emit(ts, person, "search_customers", batch, reason=reason, addr=insider.addr)
        else:
            d.emit(ts, person, rng.choice(PROFILE[:3]), [work.any_customer(d.date)],
                   reason=reason, addr=insider.addr, purpose="miss")
        ts += rng.uniform(10, 240)


def _peek(insider: Insider, d: Day, work: Work, rng: random.Random) -> None:
    person, addr = insider.person, work.addr(insider.person, d.date)
    target = rng.choice(insider.targets)
    start, end = SHIFTS[person.shift_on(d.date)]
    ts = d.midnight + rng.uniform(start, end - 1) * 3600
    reason = _reason(work, insider, rng) if insider.variant == "reuse" else None
    for name in rng.sample(PROFILE, rng.randint(2, 5)):
        d.emit(ts, person, name, [target], reason=reason, addr=addr, purpose="miss")
        ts += rng.uniform(20, 180)
