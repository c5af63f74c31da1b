"""The simulated organisation: staff, roles, shifts, calendars, addresses, turnover.

Everything is drawn from one ``random.Random(seed)``; the organisation's own
shape (head count per role, workloads, how often people forget a reason) is
drawn too, so different seeds are different companies, not reshuffles.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

START = dt.date(2024, 1, 1)

# Working hours are UTC. Support runs three shifts and an offshore night team.
SHIFTS = {"early": (6, 14), "day": (8, 17), "late": (13, 21), "night": (22, 30)}
OFFICE_ADDRS = ("10.1.0.1", "10.1.0.2", "10.2.0.1")
NIGHT_OFFICE = "10.3.0.1"

ROLE_SIZES = {  # (min, max) head count at the start
    "support": (22, 30),
    "billing": (5, 8),
    "compliance": (3, 5),
    "engineer": (6, 10),
    "risk": (3, 5),
}


def holidays(year: int) -> set[dt.date]:
    """Public holidays (a fixed, plausible European set)."""
    fixed = [(1, 1), (5, 1), (10, 3), (12, 24), (12, 25), (12, 26), (12, 31)]
    easter = {2024: dt.date(2024, 3, 31), 2025: dt.date(2025, 4, 20),
              2026: dt.date(2026, 4, 5), 2027: dt.date(2027, 3, 28)}[year]
    moving = [easter - dt.timedelta(days=2), easter + dt.timedelta(days=1),
              easter + dt.timedelta(days=39), easter + dt.timedelta(days=50)]
    return {dt.date(year, m, d) for m, d in fixed} | set(moving)


@dataclass
class Calendar:
    start: dt.date
    end: dt.date
    off: set[dt.date]

    def working(self, day: dt.date) -> bool:
        return day.weekday() < 5 and day not in self.off

    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def working_days_between(self, first: dt.date, last: dt.date) -> int:
        """Working days from ``first`` to ``last``, both included (1 = the same day)."""
        count, day = 0, first
        while day <= last:
            count += self.working(day)
            day += dt.timedelta(days=1)
        return count


@dataclass
class Person:
    id: str
    email: str
    role: str
    joined: dt.date
    left: dt.date | None
    shift: str
    speed: float  # workload, in cases a day
    forget: float  # chance a call carries no reason
    adhoc: float  # look-ups a day with no ticket (a customer on the phone)
    wfh: float  # share of days worked from home
    home: list[tuple[dt.date, str]] = field(default_factory=list)  # (from, address)
    shift_changes: list[tuple[dt.date, str]] = field(default_factory=list)
    away: set[dt.date] = field(default_factory=set)  # vacation and sick days

    def present(self, day: dt.date) -> bool:
        return self.joined <= day and (self.left is None or day <= self.left) \
            and day not in self.away

    def shift_on(self, day: dt.date) -> str:
        shift = self.shift
        for since, name in self.shift_changes:
            if day >= since:
                shift = name
        return shift

    def home_addr(self, day: dt.date) -> str:
        addr = self.home[0][1]
        for since, value in self.home:
            if day >= since:
                addr = value
        return addr


@dataclass
class Org:
    rng: random.Random
    calendar: Calendar
    people: list[Person]
    customers0: int  # customers at the start
    growth: float  # new customers a day
    tickets_scale: float
    surge_days: set[dt.date]

    def customers(self, day: dt.date) -> int:
        return int(self.customers0 + self.growth * (day - self.calendar.start).days)

    def by_role(self, role: str, day: dt.date) -> list[Person]:
        return [p for p in self.people if p.role == role and p.present(day)]


class _Ids:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.n = 0

    def person(self, role: str) -> tuple[str, str]:
        self.n += 1
        return f"usr_{self.rng.getrandbits(48):012x}", f"{role}{self.n:03d}@corp.example"


def _home(rng: random.Random, joined: dt.date, end: dt.date) -> list[tuple[dt.date, str]]:
    """A home VPN address that changes every few months (a new lease, a new router)."""
    out, day = [], joined
    while day <= end:
        out.append((day, f"10.8.{rng.randrange(256)}.{rng.randrange(1, 255)}"))
        day += dt.timedelta(days=rng.randint(60, 240))
    return out


def _away(rng: random.Random, joined: dt.date, end: dt.date) -> set[dt.date]:
    days: set[dt.date] = set()
    for year in range(joined.year, end.year + 1):
        for _ in range(rng.randint(2, 4)):  # vacation blocks
            first = dt.date(year, 1, 1) + dt.timedelta(days=rng.randrange(365))
            days |= {first + dt.timedelta(days=i) for i in range(rng.randint(5, 14))}
        days |= {dt.date(year, 1, 1) + dt.timedelta(days=rng.randrange(365))
                 for _ in range(rng.randint(2, 8))}  # sick days
    return days


def _person(rng: random.Random, ids: _Ids, role: str, joined: dt.date, end: dt.date,
            night_team: bool = False) -> Person:
    uid, email = ids.person(role)
    shift = "night" if night_team else (rng.choice(["early", "day", "day", "late"])
                                         if role == "support" else "day")
    speed = {"support": rng.uniform(9, 20), "billing": rng.uniform(5, 11),
             "compliance": rng.uniform(0.8, 2.2), "engineer": rng.uniform(2, 6),
             "risk": rng.uniform(4, 9)}[role]
    person = Person(uid, email, role, joined, None, shift, speed,
                    forget=rng.uniform(0.003, 0.03), adhoc=rng.uniform(0.02, 0.25),
                    wfh=rng.uniform(0.1, 0.7), home=_home(rng, joined, end),
                    away=_away(rng, joined, end))
    if role == "support" and not night_team and rng.random() < 0.5:
        when = joined + dt.timedelta(days=rng.randint(60, 600))
        person.shift_changes.append((when, rng.choice([s for s in ("early", "day", "late")
                                                        if s != shift])))
    return person


def build_org(seed: int, months: int = 24) -> Org:
    rng = random.Random(seed)
    end = START + dt.timedelta(days=int(months * 30.44) - 1)
    off = set().union(*(holidays(y) for y in range(START.year, end.year + 1)))
    calendar = Calendar(START, end, off)
    ids = _Ids(rng)
    people: list[Person] = []
    for role, (low, high) in ROLE_SIZES.items():
        count = rng.randint(low, high)
        for i in range(count):
            night = role == "support" and i < 3
            people.append(_person(rng, ids, role, START - dt.timedelta(days=rng.randint(30, 900)),
                                  end, night_team=night))
    _turnover(rng, ids, people, end, rate=rng.uniform(0.10, 0.22))
    surges = {d for d in calendar.days() if calendar.working(d) and rng.random() < 0.04}
    return Org(rng, calendar, people, customers0=rng.randint(60_000, 250_000),
               growth=rng.uniform(20, 120), tickets_scale=rng.uniform(0.85, 1.15),
               surge_days=surges)


def _turnover(rng: random.Random, ids: _Ids, people: list[Person], end: dt.date,
              rate: float) -> None:
    """Each year about ``rate`` of staff leave; each is replaced a few weeks later."""
    queue = list(people)
    while queue:
        person = queue.pop()
        years = rng.expovariate(rate)
        leave = max(person.joined, START) + dt.timedelta(days=int(years * 365))
        if leave >= end:
            continue
        person.left = leave
        joined = leave + dt.timedelta(days=rng.randint(10, 45))
        if joined < end:
            hire = _person(rng, ids, person.role, joined, end,
                           night_team=person.shift == "night")
            people.append(hire)
            queue.append(hire)
