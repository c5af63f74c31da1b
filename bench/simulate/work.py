"""Honest work: what each role does through the gateway on a working day.

Support works tickets (open the ticket, look the customer up, read orders and
payments, come back to it on a later day), lists its queue, takes calls with
no ticket yet, helps a colleague now and then. Billing works cases and runs the
failed-payments report; compliance answers subject-access requests and runs a
monthly audit sample; engineers debug by day and answer incidents at night when
on call; risk analysts search for linked accounts.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.simulate.org import NIGHT_OFFICE, OFFICE_ADDRS, SHIFTS, Org, Person

UTC = dt.UTC
BY_ID = ("get_customer_by_id", "list_customer_orders", "list_customer_payments",
         "list_customer_tickets", "get_order_by_id", "get_ticket", "get_account_balances")
GENERIC_REASONS = ("customer on the phone", "callback", "chat follow-up", "checking")


def poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def iso(ts: float) -> str:
    moment = dt.datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class Ticket:
    id: str
    customer: int
    assignee: str
    revisits: list[dt.date] = field(default_factory=list)


@dataclass
class Day:
    """The events of one working day being built (and what the org knows so far)."""

    org: Org
    date: dt.date
    events: list[tuple[float, dict[str, object]]]
    midnight: float

    def emit(self, ts: float, person: Person, function: str, customers: list[int], *,
             reason: str | None, addr: str, decision: str = "allowed",
             purpose: str | None = None) -> None:
        context = {"purpose": purpose} if purpose == "miss" else {}  # a match adds nothing
        self.events.append((ts, {
            "occurred_at": iso(ts), "actor_id": person.id, "actor_email": person.email,
            "actor_roles": [person.role], "function_name": function, "decision": decision,
            "reason": reason, "subjects": [{"type": "customer", "id": str(c)}
                                           for c in dict.fromkeys(customers)],
            "client_addr": addr, "context": context,
        }))


class Work:
    """Honest work for the whole organisation, one day at a time."""

    def __init__(self, org: Org) -> None:
        self.org = org
        self.rng = org.rng
        self.next_ticket = 10_000
        self.next_case = 1
        self.recent: list[Ticket] = []  # tickets of the last weeks, for escalations and help
        self.due: dict[dt.date, list[Ticket]] = {}
        self.worked_today: dict[str, list[Ticket]] = {}  # person -> tickets worked today
        self.roles: dict[str, Callable[[Day, Person], None]] = {
            "support": self.support, "billing": self.billing, "compliance": self.compliance,
            "engineer": self.engineer, "risk": self.risk}

    # --- shared helpers --------------------------------------------------------------

    def customer(self, day: dt.date) -> int:
        """An honest contact: long-standing customers write in more often."""
        return 1 + int(self.org.customers(day) * self.rng.random() ** 1.6)

    def any_customer(self, day: dt.date) -> int:
        return 1 + int(self.org.customers(day) * self.rng.random())

    def addr(self, person: Person, day: dt.date) -> str:
        if self.rng.random() < person.wfh:
            return person.home_addr(day)
        if person.shift_on(day) == "night":
            return NIGHT_OFFICE
        return self.rng.choice(OFFICE_ADDRS)

    def moment(self, d: Day, person: Person) -> float:
        start, end = SHIFTS[person.shift_on(d.date)]
        return d.midnight + self.rng.uniform(start, end) * 3600

    def reason(self, person: Person, value: str) -> str | None:
        return None if self.rng.random() < person.forget else value

    def ticket_id(self) -> str:
        self.next_ticket += 1
        return f"TICKET-{self.next_ticket}"

    def case_id(self, prefix: str) -> str:
        self.next_case += 1
        return f"{prefix}-{self.next_case}"

    def load(self, d: Day, person: Person) -> float:
        weekday = d.date.weekday()
        factor = (1.2, 1.05, 1.0, 1.0, 0.9, 0.5, 0.4)[weekday]
        if d.date in self.org.surge_days:
            factor *= 1.7
        ramp = min(1.0, 0.4 + 0.06 * (d.date - person.joined).days) if person.joined > \
            self.org.calendar.start else 1.0
        return person.speed * factor * ramp * self.org.tickets_scale

    # --- the day ---------------------------------------------------------------------

    def day(self, d: Day, weekend_rota: set[str]) -> None:
        self.worked_today = {}
        working = self.org.calendar.working(d.date)
        for person in self.org.people:
            if not person.present(d.date):
                continue
            if working or person.id in weekend_rota:
                self.roles[person.role](d, person)
        self.due.pop(d.date, None)
        self.recent = self.recent[-3000:]

    def support(self, d: Day, person: Person) -> None:
        rng, addr = self.rng, self.addr(person, d.date)
        worked: list[Ticket] = []
        for _ in range(poisson(rng, self.load(d, person))):
            ticket = Ticket(self.ticket_id(), self.customer(d.date), person.id)
            if rng.random() < 0.3:
                for _ in range(rng.randint(1, 2)):
                    ticket.revisits.append(d.date + dt.timedelta(days=rng.randint(1, 6)))
                    self.due.setdefault(ticket.revisits[-1], []).append(ticket)
            worked.append(ticket)
            self.recent.append(ticket)
            self.ticket_flow(d, person, ticket, addr, first=True)
        for ticket in [t for t in self.due.get(d.date, []) if t.assignee == person.id]:
            worked.append(ticket)
            self.ticket_flow(d, person, ticket, addr, first=False)
        self.worked_today[person.id] = worked
        queue = [t.customer for t in worked][:25]
        for _ in range(2 + poisson(rng, 1.5)):
            if queue:
                d.emit(self.moment(d, person), person, "list_open_tickets_for",
                       rng.sample(queue, min(len(queue), rng.randint(3, 15))), reason=None,
                       addr=addr)
        self.adhoc(d, person, addr)
        self.mistakes(d, person, addr)

    def ticket_flow(self, d: Day, person: Person, ticket: Ticket, addr: str, *, first: bool,
                    purpose: str = "match") -> None:
        rng = self.rng
        ts = self.moment(d, person)
        calls = ["get_ticket"]
        if first and rng.random() < 0.1:
            calls.insert(0, "search_customers")
        for name, p in (("get_customer_by_id", 0.85 if first else 0.4),
                        ("list_customer_orders", 0.5), ("list_customer_payments", 0.3),
                        ("list_customer_tickets", 0.2), ("get_order_by_id", 0.2)):
            if rng.random() < p:
                calls.append(name)
        for name in calls:
            customers = [ticket.customer]
            if name == "search_customers":
                customers += [self.customer(d.date) for _ in range(rng.randint(0, 4))]
            d.emit(ts, person, name, customers, reason=self.reason(person, ticket.id),
                   addr=addr, purpose=purpose if name in BY_ID else None)
            ts += rng.uniform(20, 240)

    def adhoc(self, d: Day, person: Person, addr: str) -> None:
        """Honest look-ups with no ticket, and now and then help on a colleague's ticket."""
        rng = self.rng
        for _ in range(poisson(rng, person.adhoc)):
            reason = rng.choice(GENERIC_REASONS) if rng.random() < 0.3 else None
            ts, customer = self.moment(d, person), self.customer(d.date)
            for name in rng.sample(["get_customer_by_id", "list_customer_orders"],
                                   rng.randint(1, 2)):
                d.emit(ts, person, name, [customer], reason=reason, addr=addr, purpose="miss")
                ts += rng.uniform(20, 120)
        if self.recent and rng.random() < 0.03:  # the purpose check allows the whole team
            ticket = rng.choice(self.recent[-500:])
            self.ticket_flow(d, person, ticket, addr, first=False)

    def mistakes(self, d: Day, person: Person, addr: str) -> None:
        if self.rng.random() < 0.01:
            d.emit(self.moment(d, person), person, "revenue_by_plan", [], reason=None,
                   addr=addr, decision="denied")
        if self.rng.random() < 0.03:
            d.emit(self.moment(d, person), person, "get_customer_by_id", [], reason=None,
                   addr=addr, decision="error")

    def billing(self, d: Day, person: Person) -> None:
        rng, addr = self.rng, self.addr(person, d.date)
        for _ in range(poisson(rng, self.load(d, person))):
            if self.recent and rng.random() < 0.3:
                ticket = rng.choice(self.recent[-400:])
                reason, customer = ticket.id, ticket.customer
            else:
                reason, customer = self.case_id("BILL"), self.customer(d.date)
            ts = self.moment(d, person)
            for name, p in (("get_customer_by_id", 1.0), ("list_customer_payments", 0.8),
                            ("get_account_balances", 0.5), ("get_order_by_id", 0.3)):
                if rng.random() < p:
                    d.emit(ts, person, name, [customer], reason=self.reason(person, reason),
                           addr=addr)
                    ts += rng.uniform(20, 200)
        for _ in range(rng.randint(0, 2)):
            d.emit(self.moment(d, person), person, "list_failed_payments",
                   [self.customer(d.date) for _ in range(rng.randint(30, 200))], reason=None,
                   addr=addr)
        self.adhoc_plain(d, person, addr)

    def adhoc_plain(self, d: Day, person: Person, addr: str) -> None:
        for _ in range(poisson(self.rng, person.adhoc / 2)):
            d.emit(self.moment(d, person), person, "get_customer_by_id",
                   [self.customer(d.date)], reason=None, addr=addr)

    def compliance(self, d: Day, person: Person) -> None:
        rng, addr = self.rng, self.addr(person, d.date)
        for _ in range(poisson(rng, self.load(d, person))):
            reason, customer, ts = self.case_id("DSAR"), self.customer(d.date), \
                self.moment(d, person)
            for name in ("get_customer_by_id", "list_customer_orders", "list_customer_payments",
                         "list_customer_tickets", "get_account_balances"):
                if rng.random() < 0.8:
                    d.emit(ts, person, name, [customer], reason=self.reason(person, reason),
                           addr=addr)
                    ts += rng.uniform(30, 300)
        team = sorted(p.id for p in self.org.by_role("compliance", d.date))
        first_working = d.date.day <= 3 and self.org.calendar.working(d.date) and \
            not any(self.org.calendar.working(d.date - dt.timedelta(days=i))
                    for i in range(1, d.date.day))
        if first_working and team and team[d.date.month % len(team)] == person.id:
            self.audit_sample(d, person, addr)

    def audit_sample(self, d: Day, person: Person, addr: str) -> None:
        rng = self.rng
        reason = f"AUDIT-{d.date:%Y-%m}"
        sample = [self.any_customer(d.date) for _ in range(500)]
        ts = self.moment(d, person)
        d.emit(ts, person, "customers_created_between", sample, reason=reason, addr=addr)
        for customer in rng.sample(sample, rng.randint(8, 15)):
            ts += rng.uniform(60, 600)
            d.emit(ts, person, "get_customer_by_id", [customer], reason=reason, addr=addr)

    def engineer(self, d: Day, person: Person) -> None:
        rng, addr = self.rng, self.addr(person, d.date)
        for _ in range(poisson(rng, self.load(d, person))):
            reason, ts = self.case_id("ENG"), self.moment(d, person)
            for customer in [self.customer(d.date) for _ in range(rng.randint(1, 3))]:
                d.emit(ts, person, rng.choice(["get_order_by_id", "get_customer_by_id"]),
                       [customer], reason=self.reason(person, reason), addr=addr)
                ts += rng.uniform(30, 400)
        if rng.random() < 0.3:
            d.emit(self.moment(d, person), person, "customers_by_country", [], reason=None,
                   addr=addr)
        if rng.random() < 0.2:
            d.emit(self.moment(d, person), person, "list_failed_payments",
                   [self.customer(d.date) for _ in range(rng.randint(20, 150))], reason=None,
                   addr=addr)

    def on_call(self, d: Day) -> None:
        """The engineer on call this week answers incidents in the night after ``d``."""
        team = sorted((p for p in self.org.by_role("engineer", d.date)), key=lambda p: p.id)
        if not team or self.rng.random() > 0.25:
            return
        person = team[d.date.isocalendar().week % len(team)]
        rng, addr = self.rng, person.home_addr(d.date)
        ts = d.midnight + 86_400 + rng.uniform(0, 5) * 3600
        reason = self.case_id("INC")
        for _ in range(rng.randint(3, 12)):
            if rng.random() < 0.3:
                customers = [self.customer(d.date) for _ in range(rng.randint(20, 150))]
                d.emit(ts, person, "list_failed_payments", customers, reason=None, addr=addr)
            else:
                d.emit(ts, person, rng.choice(["get_order_by_id", "get_customer_by_id"]),
                       [self.customer(d.date)],
                       reason=reason if rng.random() > 0.3 else None, addr=addr)
            ts += rng.uniform(60, 900)

    def risk(self, d: Day, person: Person) -> None:
        rng, addr = self.rng, self.addr(person, d.date)
        for _ in range(poisson(rng, self.load(d, person))):
            reason, ts = self.case_id("CASE"), self.moment(d, person)
            linked = [self.customer(d.date) for _ in range(rng.randint(1, 4))]
            d.emit(ts, person, "search_customers",
                   linked[:1] + [self.any_customer(d.date) for _ in range(rng.randint(0, 30))],
                   reason=reason, addr=addr)
            for customer in linked:
                ts += rng.uniform(30, 300)
                d.emit(ts, person, "get_customer_by_id", [customer],
                       reason=self.reason(person, reason), addr=addr)
                if rng.random() < 0.5:
                    d.emit(ts + 20, person, "list_customer_payments", [customer],
                           reason=self.reason(person, reason), addr=addr)


def callbacks(d: Day, rng: random.Random, share: float) -> None:
    """Customers who call back later the same day about a call that had no ticket: the same
    support agent looks them up again, alone, 30 minutes to 4 hours after the first call, with
    what that call carried (most often no reason, and no purpose). Drawn from a stream of its
    own, after the day's other honest work, so the rest of the day stays the same."""
    if share <= 0:
        return
    people = {p.id: p for p in d.org.people}
    first: dict[tuple[object, object], tuple[float, dict[str, object]]] = {}
    for ts, event in d.events:
        subjects = event["subjects"]
        context = event["context"]
        assert isinstance(subjects, list) and isinstance(context, dict)
        if len(subjects) == 1 and context.get("purpose") == "miss" and \
                event["actor_roles"] == ["support"]:
            first.setdefault((event["actor_id"], subjects[0]["id"]), (ts, event))
    for (actor, customer), (ts, event) in sorted(first.items(), key=lambda item: item[1][0]):
        if rng.random() >= share:
            continue
        later = ts + rng.uniform(0.5, 4.0) * 3600
        if later < d.midnight + 86_400:
            reason, addr = event["reason"], event["client_addr"]
            assert reason is None or isinstance(reason, str)
            assert isinstance(addr, str) and isinstance(customer, str)
            d.emit(later, people[str(actor)], "get_customer_by_id", [int(customer)],
                   reason=reason, addr=addr, purpose="miss")
