"""Snoopers, and honest people who look like them: returning attention to a few subjects.

A snooper keeps coming back to the same one to three people, a look or two on
most working days, for weeks, with no ticket for them. Styles (``--style`` knobs
below are per style):

- ``persistent``: no reason at all;
- ``reused_ticket``: the reason is a ticket they are working that day, for someone else;
- ``invented_ticket``: a made-up ticket number in the real range, new each time;
- ``spread``: a different function each time, now and then a name search that
  returns the target among a few others;
- ``colleague``: a colleague's own customer record (in ``relationships.csv`` as the
  colleague's ``self`` link);
- ``watched``: a public figure on the watch list (``watch.csv``);
- ``self``: their own customer record;
- ``family``: a relative's record (``relationships.csv``: ``family``).

Honest look-alikes, on top of their ordinary work, must not alert:

- ``long_case``: a support agent owns a case that runs for weeks and returns to it,
  with its ticket, through the ticket;
- ``book``: a billing relationship manager with a fixed book of clients, looked up
  every working day of their tenure, often without a reason;
- ``incident``: the engineer on call returns to the same incident's customers on
  several nights, mostly with the incident number.

Everything here draws from its own ``random.Random``, so the rest of the
organisation (and the other insiders) is the same with or without it.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from bench.simulate.insiders import PROFILE, Insider
from bench.simulate.org import OFFICE_ADDRS, SHIFTS, Org, Person
from bench.simulate.work import Day, Work

SNOOPERS = ("persistent", "reused_ticket", "invented_ticket", "spread", "colleague", "watched",
            "self", "family")
LOOKALIKES = ("long_case", "book", "incident")


@dataclass
class Knobs:
    """How one style of snooper behaves."""

    targets: tuple[int, int] = (1, 3)  # how many subjects
    weeks: tuple[int, int] = (3, 6)  # how long it goes on
    most_days: float = 0.8  # share of working days with a look
    looks: tuple[int, int] = (1, 2)  # look-ups a day, each of one target
    functions: tuple[int, int] = (1, 1)  # calls (functions) per look-up


KNOBS = {style: Knobs() for style in SNOOPERS}
KNOBS["invented_ticket"] = Knobs(functions=(1, 2))
KNOBS["watched"] = Knobs(targets=(1, 1))
KNOBS["self"] = Knobs(targets=(1, 1), weeks=(1, 3), most_days=0.5)
KNOBS["colleague"] = Knobs(targets=(1, 1))
KNOBS["family"] = Knobs(targets=(1, 2))


@dataclass
class Lists:
    """What the organisation declares: watched subjects and staff-subject links."""

    watched: dict[int, str] = field(default_factory=dict)  # customer -> why
    links: list[tuple[str, int, str]] = field(default_factory=list)  # (actor, customer, kind)

    def write(self, folder: object) -> None:
        from pathlib import Path

        assert isinstance(folder, Path)
        with (folder / "watch.csv").open("w") as out:
            out.write("subject,why\n")
            for customer, why in sorted(self.watched.items()):
                out.write(f"customer:{customer},{why}\n")
        with (folder / "relationships.csv").open("w") as out:
            out.write("actor,subject,kind\n")
            for actor, customer, kind in sorted(self.links):
                out.write(f"{actor},customer:{customer},{kind}\n")


@dataclass
class Lookalike:
    style: str
    person: Person
    start: dt.date
    end: dt.date
    targets: list[int] = field(default_factory=list)
    ticket: str = ""

    def truth(self) -> dict[str, object]:
        return {"actor_id": self.person.id, "role": self.person.role, "style": self.style,
                "start": self.start.isoformat(), "end": self.end.isoformat(),
                "subjects": len(self.targets)}


def _tenured(org: Org, role: str, at: dt.date, stay: int, taken: set[str]) -> list[Person]:
    return [p for p in org.people if p.role == role and p.id not in taken
            and p.shift != "night"
            and p.joined <= at - dt.timedelta(days=60)
            and (p.left is None or p.left >= at + dt.timedelta(days=stay))]


def _someone(org: Org, rng: random.Random, roles: tuple[str, ...], stay: int, taken: set[str],
             margin: tuple[int, int] = (90, 60)) -> tuple[Person, dt.date]:
    """A tenured person of one of ``roles`` and a start date they are there for ``stay`` days."""
    cal = org.calendar
    span = (cal.end - cal.start).days
    for _ in range(1000):
        start = cal.start + dt.timedelta(days=rng.randint(margin[0], span - margin[1]))
        pool = _tenured(org, rng.choice(roles), start, stay, taken)
        if pool:
            person = rng.choice(pool)
            taken.add(person.id)
            return person, start
    raise RuntimeError(f"no one left in {roles} to plant")


def plant_snoopers(org: Org, rng: random.Random, taken: set[str],
                   styles: tuple[str, ...] = SNOOPERS) -> tuple[list[Insider], Lists]:
    """One snooper of each style, and the lists the organisation keeps about its people."""
    cal = org.calendar
    lists = Lists()
    low = org.customers(cal.start)
    staff = sorted(org.people, key=lambda p: p.id)
    for person in staff:  # a quarter of the staff are customers too; some have family here
        if rng.random() < 0.25:
            lists.links.append((person.id, rng.randrange(1, low), "self"))
        if rng.random() < 0.1:
            lists.links.append((person.id, rng.randrange(1, low), "family"))
    for _ in range(5):  # public figures and board members: not the busiest customers
        lists.watched[rng.randrange(200, 3000)] = rng.choice(["public figure", "board member"])
    found: list[Insider] = []
    for style in styles:
        knobs = KNOBS[style]
        length = 7 * rng.randint(*knobs.weeks)
        roles = ("support", "billing") if style in ("spread", "invented_ticket") else ("support",)
        person, start = _someone(org, rng, roles, length + 10, taken)
        count = rng.randint(*knobs.targets)
        if style == "watched":
            targets = [rng.choice(sorted(lists.watched))]
        elif style == "self":
            targets = [rng.randrange(1, low)]
            lists.links.append((person.id, targets[0], "self"))
        elif style == "family":
            targets = [rng.randrange(1, low) for _ in range(count)]
            lists.links += [(person.id, t, "family") for t in targets]
        elif style == "colleague":
            mates = [c for a, c, k in lists.links if k == "self" and a != person.id]
            targets = [rng.choice(mates)]
        else:
            targets = [rng.randrange(1, org.customers(start)) for _ in range(count)]
        found.append(Insider("snooper", style, person, start,
                             start + dt.timedelta(days=length), targets=targets))
    return found, lists


def snoop(insider: Insider, d: Day, work: Work, rng: random.Random) -> None:
    """A snooper's look-ups of ``d``: a look or two at their targets on most working days."""
    person, knobs = insider.person, KNOBS[insider.variant]
    if not insider.start <= d.date <= insider.end or not person.present(d.date) \
            or not work.org.calendar.working(d.date) or rng.random() > knobs.most_days:
        return
    before = len(d.events)
    addr = person.home_addr(d.date) if rng.random() < person.wfh else OFFICE_ADDRS[0]
    first, last = SHIFTS[person.shift_on(d.date)]
    for _ in range(rng.randint(*knobs.looks)):
        target = rng.choice(insider.targets)
        ts = d.midnight + rng.uniform(first, last - 0.5) * 3600
        reason = _reason(insider.variant, work, person, rng)
        functions = rng.sample(PROFILE, rng.randint(*knobs.functions))
        for name in functions:
            if insider.variant == "spread" and rng.random() < 0.25:
                others = [rng.randrange(1, work.org.customers(d.date)) for _ in range(2)]
                d.emit(ts, person, "search_customers", [target, *others], reason=reason,
                       addr=addr)
            else:
                d.emit(ts, person, name, [target], reason=reason, addr=addr, purpose="miss")
            ts += rng.uniform(15, 120)
    if len(d.events) > before:
        insider.first = insider.first or d.date
        insider.last = d.date
        insider.events += len(d.events) - before
        insider.subjects.update(insider.targets)


def _reason(style: str, work: Work, person: Person, rng: random.Random) -> str | None:
    if style == "reused_ticket":
        worked = work.worked_today.get(person.id) or work.recent[-50:]
        return rng.choice(worked).id if worked else None
    if style == "invented_ticket":
        return f"TICKET-{rng.randint(work.next_ticket - 20_000, work.next_ticket + 2_000)}"
    return None


def plant_lookalikes(org: Org, rng: random.Random, taken: set[str]) -> list[Lookalike]:
    """Honest people whose work returns to the same subjects: two of each kind."""
    cal = org.calendar
    span = (cal.end - cal.start).days
    found: list[Lookalike] = []
    for _ in range(2):
        person, start = _someone(org, rng, ("support",), 70, taken, (60, 70))
        found.append(Lookalike("long_case", person, start,
                               start + dt.timedelta(days=7 * rng.randint(4, 9)),
                               [rng.randrange(1, org.customers(start))],
                               f"TICKET-{rng.randint(1, 9999)}"))
    for _ in range(2):  # a relationship manager keeps their book for their whole tenure
        people = [p for p in org.people if p.role == "billing" and p.id not in taken]
        person = rng.choice(people)
        taken.add(person.id)
        found.append(Lookalike("book", person, max(person.joined, cal.start),
                               person.left or cal.end,
                               [rng.randrange(1, org.customers0) for _ in range(rng.randint(8, 15))]))
    for _ in range(2):
        start = cal.start + dt.timedelta(days=rng.randint(60, span - 30))
        engineers = sorted((p for p in org.by_role("engineer", start)), key=lambda p: p.id)
        person = engineers[start.isocalendar().week % len(engineers)]  # on call that week
        found.append(Lookalike("incident", person, start, start + dt.timedelta(days=6),
                               [rng.randrange(1, org.customers(start))
                                for _ in range(rng.randint(1, 3))],
                               f"INC-{rng.randint(100_000, 999_999)}"))
    return found


def honest_return(look: Lookalike, d: Day, rng: random.Random) -> None:
    """The look-alike's honest returns on ``d``."""
    person = look.person
    if not look.start <= d.date <= look.end or not person.present(d.date):
        return
    addr = person.home_addr(d.date) if rng.random() < person.wfh else OFFICE_ADDRS[1]
    first, last = SHIFTS[person.shift_on(d.date)]
    working = d.org.calendar.working(d.date)
    if look.style == "long_case" and working and rng.random() < 0.85:
        for _ in range(rng.randint(1, 2)):
            ts = d.midnight + rng.uniform(first, last - 0.5) * 3600
            for name in ("get_ticket", *rng.sample(PROFILE[:3], rng.randint(1, 2))):
                d.emit(ts, person, name, look.targets, reason=look.ticket, addr=addr)
                ts += rng.uniform(20, 200)
    elif look.style == "book" and working:
        for client in rng.sample(look.targets, rng.randint(2, 5)):
            ts = d.midnight + rng.uniform(first, last - 0.5) * 3600
            reason = None if rng.random() < 0.3 else f"BOOK-{client}"
            for name in ("get_customer_by_id", *rng.sample(PROFILE[1:4], rng.randint(0, 2))):
                d.emit(ts, person, name, [client], reason=reason, addr=addr)
                ts += rng.uniform(20, 200)
    elif look.style == "incident" and rng.random() < 0.7:
        ts = d.midnight + 86_400 + rng.uniform(0, 5) * 3600
        for _ in range(rng.randint(1, 4)):
            customer = rng.choice(look.targets)
            d.emit(ts, person, rng.choice(["get_order_by_id", "get_customer_by_id"]), [customer],
                   reason=look.ticket if rng.random() > 0.3 else None,
                   addr=person.home_addr(d.date))
            ts += rng.uniform(60, 900)
