"""The demo's sample data: a small fintech with customers, accounts, orders, payments, tickets.

Everything comes from one ``random.Random(seed)``, so the same seed and size give
byte-identical rows. Names, emails, phones, IBANs (valid mod-97 check digits) and
SSN-like numbers are made up; every email domain is a reserved ``example`` one.

Customer 42 always exists and carries the ``CANARIES``: values that appear nowhere
else in the data, so a test can search any response, log or error for them and
know a protected field leaked. Customer 42 also always has at least three orders,
one of them paid, card payments, an account whose IBAN is ``CANARIES["account_iban"]``
and an open ticket assigned to ``alice@example.com``.
"""

from __future__ import annotations

import datetime as dt
import random
import string
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple, cast

import psycopg
from psycopg import sql

from querygate.errors import QuerygateError

CANARY_CUSTOMER_ID = 42

CANARIES: Mapping[str, str] = MappingProxyType(
    {
        "full_name": "Ada Canary",
        "email": "canary.42@example.net",
        "phone": "+49 999 424 2424",
        "iban": "DE77424242420000004242",
        "ssn": "999-42-4242",
        "date_of_birth": "1942-04-02",
        "account_iban": "DE84424242420000000042",
    }
)
"""Values carried only by customer 42 (``account_iban`` is on its first row in ``accounts``)."""

TABLES = ("customers", "accounts", "orders", "payments", "support_tickets")

SCHEMA_SQL = """
CREATE TABLE customers (
    id bigint NOT NULL,
    full_name text NOT NULL,
    email text NOT NULL,
    phone text,
    iban text,
    ssn text,
    date_of_birth date,
    country text NOT NULL,
    plan_tier text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE accounts (
    id bigint NOT NULL,
    customer_id bigint NOT NULL,
    iban text NOT NULL,
    currency text NOT NULL,
    balance numeric(14,2) NOT NULL,
    status text NOT NULL,
    opened_at timestamptz NOT NULL
);
CREATE TABLE orders (
    id text NOT NULL,
    customer_id bigint NOT NULL,
    amount numeric(12,2) NOT NULL,
    currency text NOT NULL,
    status text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE payments (
    id bigint NOT NULL,
    order_id text NOT NULL,
    customer_id bigint NOT NULL,
    amount numeric(12,2) NOT NULL,
    method text NOT NULL,
    card_last4 text,
    status text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE support_tickets (
    id text NOT NULL,
    customer_id bigint NOT NULL,
    assignee_email text,
    subject text NOT NULL,
    status text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE VIEW customer_overview AS
SELECT c.id, c.full_name, c.email, c.plan_tier, c.country, c.created_at,
       (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) AS order_count
FROM customers c;
"""

KEYS_SQL = """
ALTER TABLE customers ADD PRIMARY KEY (id);
ALTER TABLE customers ADD CONSTRAINT customers_email_key UNIQUE (email);
CREATE INDEX customers_email_prefix_idx ON customers (email text_pattern_ops);
CREATE INDEX customers_created_at_idx ON customers (created_at);
ALTER TABLE accounts ADD PRIMARY KEY (id);
ALTER TABLE accounts ADD CONSTRAINT accounts_iban_key UNIQUE (iban);
ALTER TABLE accounts ADD FOREIGN KEY (customer_id) REFERENCES customers (id);
CREATE INDEX accounts_customer_id_idx ON accounts (customer_id);
ALTER TABLE orders ADD PRIMARY KEY (id);
ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES customers (id);
CREATE INDEX orders_customer_id_created_at_idx ON orders (customer_id, created_at);
CREATE INDEX orders_created_at_idx ON orders (created_at);
ALTER TABLE payments ADD PRIMARY KEY (id);
ALTER TABLE payments ADD FOREIGN KEY (order_id) REFERENCES orders (id);
ALTER TABLE payments ADD FOREIGN KEY (customer_id) REFERENCES customers (id);
CREATE INDEX payments_customer_id_idx ON payments (customer_id);
CREATE INDEX payments_order_id_idx ON payments (order_id);
CREATE INDEX payments_status_created_at_idx ON payments (status, created_at);
ALTER TABLE support_tickets ADD PRIMARY KEY (id);
ALTER TABLE support_tickets ADD FOREIGN KEY (customer_id) REFERENCES customers (id);
CREATE INDEX support_tickets_customer_id_idx ON support_tickets (customer_id);
CREATE INDEX support_tickets_assignee_status_idx ON support_tickets (assignee_email, status);
"""
"""Keys and indexes, added after the rows are copied in (much faster than checking per row)."""

_COLUMNS = {
    "customers": (
        "id", "full_name", "email", "phone", "iban", "ssn",
        "date_of_birth", "country", "plan_tier", "created_at",
    ),
    "accounts": ("id", "customer_id", "iban", "currency", "balance", "status", "opened_at"),
    "orders": ("id", "customer_id", "amount", "currency", "status", "created_at"),
    "payments": (
        "id", "order_id", "customer_id", "amount", "method", "card_last4", "status", "created_at",
    ),
    "support_tickets": ("id", "customer_id", "assignee_email", "subject", "status", "created_at"),
}  # fmt: skip

_START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
_SIGNUPS_END = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
_END = dt.datetime(2026, 6, 30, 23, 59, 59, tzinfo=dt.UTC)

Row = tuple[object, ...]


@dataclass(frozen=True)
class _Country:
    code: str
    currency: str
    dial: str
    bban: str  # "a" an uppercase letter, "n" a digit; the IBAN is code + check digits + bban


_COUNTRIES = (
    _Country("DE", "EUR", "+49", "n" * 18),
    _Country("FR", "EUR", "+33", "n" * 23),
    _Country("NL", "EUR", "+31", "aaaa" + "n" * 10),
    _Country("IT", "EUR", "+39", "a" + "n" * 22),
    _Country("ES", "EUR", "+34", "n" * 20),
    _Country("BE", "EUR", "+32", "n" * 12),
    _Country("IE", "EUR", "+353", "aaaa" + "n" * 14),
    _Country("GB", "GBP", "+44", "aaaa" + "n" * 14),
)
_COUNTRY_WEIGHTS = (24, 16, 14, 10, 10, 6, 5, 15)

_FIRST_NAMES = (
    "Emma", "Liam", "Sophie", "Noah", "Mia", "Lucas", "Hannah", "Felix", "Clara", "Jonas",
    "Léa", "Hugo", "Chloé", "Louis", "Manon", "Gabriel", "Inès", "Arthur", "Camille", "Jules",
    "Giulia", "Matteo", "Sofia", "Lorenzo", "Aurora", "Francesco", "Lucía", "Mateo", "Paula",
    "Hugo", "Martina", "Daniel", "Sanne", "Daan", "Fleur", "Bram", "Saoirse", "Cian", "Aoife",
    "Oliver", "Amelia", "Harry", "Isla", "George", "Olivia", "Arjun", "Priya", "Mohammed",
    "Fatima", "Yusuf", "Zeynep", "Mehmet", "Ana", "João", "Wei", "Mei", "Kenji", "Yuki",
    "Zoë", "Björn", "Søren", "Agnieszka", "Tomasz", "Elena", "Dmitri", "Nadia", "Kwame",
)  # fmt: skip
_LAST_NAMES = (
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Becker", "Wagner", "Hoffmann",
    "Martin", "Bernard", "Dubois", "Durand", "Lefèvre", "Moreau", "Laurent", "Girard",
    "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "García",
    "Fernández", "López", "Martínez", "Sánchez", "Pérez", "de Jong", "Jansen", "de Vries",
    "van den Berg", "Bakker", "Visser", "Peeters", "Janssens", "Maes", "Murphy", "Kelly",
    "O'Sullivan", "Walsh", "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson",
    "Patel", "Khan", "Öztürk", "Kaya", "Nowak", "Kowalski", "Silva", "Santos", "Chen",
    "Wang", "Tanaka", "Sato", "Andersen", "Nielsen", "Ivanova", "Mensah", "Okafor",
)  # fmt: skip
_MAIL_DOMAINS = ("example.net", "example.org", "mail.example.net", "post.example.org")
_COMPANY_DOMAINS = ("acme.example", "globex.example", "initech.example", "umbrella.example")

_PLAN_TIERS = ("free", "pro", "enterprise")
_ORDER_STATUSES = ("paid", "pending", "refunded", "failed", "cancelled")
_PAYMENT_FOR_ORDER = {"paid": "succeeded", "pending": "pending", "refunded": "refunded",
                      "failed": "failed"}  # fmt: skip
_METHODS = ("card", "sepa_debit", "bank_transfer", "wallet")
_ASSIGNEES = ("alice@example.com", "bob@example.com", "carol@example.com", "dan@example.com")
_TICKET_SUBJECTS = (
    "Card declined at checkout",
    "Cannot log in after password reset",
    "Please update my billing address",
    "Question about my invoice",
    "Please move me to the {tier} plan",
    "Duplicate charge on my card",
    "How do I export my statements?",
    "Account frozen, need access",
    "Direct debit mandate not working",
    "Close my account",
)
_ORDER_SUBJECTS = (
    "Refund not received for {order}",
    "Order {order} charged twice",
    "Where is the receipt for {order}?",
)
_BASE36 = string.digits + string.ascii_lowercase
_SSN_AREAS = tuple(area for area in range(1, 900) if area != 666)


class _Customer(NamedTuple):
    id: int
    country: _Country
    plan_tier: str
    created_at: dt.datetime


class _Order(NamedTuple):
    id: str
    customer_id: int
    amount: str
    currency: str
    status: str
    created_at: dt.datetime


def load_sample(
    conn: psycopg.Connection[Any], *, customers: int = 5000, seed: int = 42
) -> dict[str, int]:
    """Create and fill the sample tables in ``conn``'s database; return the row count per table.

    Runs in one transaction: tables, rows (COPY), keys and indexes, then ANALYZE.
    Refuses to run if any of the tables (or the view) already exists.
    """
    if customers < CANARY_CUSTOMER_ID:
        raise ValueError(f"customers must be at least {CANARY_CUSTOMER_ID} (the canary customer)")
    rows = _generate(random.Random(seed), customers)
    with conn.transaction():
        conn.execute("SET LOCAL search_path TO public")
        _refuse_existing(conn)
        conn.execute(SCHEMA_SQL)
        with conn.cursor() as cur:
            for table, table_rows in rows.items():
                _copy(cur, table, table_rows)
        conn.execute(KEYS_SQL)
        conn.execute("ANALYZE " + ", ".join(TABLES))
    return {table: len(table_rows) for table, table_rows in rows.items()}


def _refuse_existing(conn: psycopg.Connection[Any]) -> None:
    names = (*TABLES, "customer_overview")
    found = conn.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        " AND relname = ANY(%s) ORDER BY relname",
        [list(names)],
    ).fetchall()
    if found:
        existing = ", ".join(str(r[0]) for r in found)
        raise QuerygateError(
            f"cannot load the sample data: public.{{{existing}}} already exist(s); "
            "load it into an empty database"
        )


def _copy(cur: psycopg.Cursor[Any], table: str, rows: Iterable[Row]) -> None:
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, _COLUMNS[table]))
    )
    with cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def _generate(rng: random.Random, count: int) -> dict[str, Sequence[Row]]:
    customer_rows, people = _customers(rng, count)
    accounts = _accounts(rng, people)
    orders = _orders(rng, people)
    return {
        "customers": customer_rows,
        "accounts": accounts,
        "orders": orders,
        "payments": _payments(rng, orders),
        "support_tickets": _tickets(rng, people, orders),
    }


# --- customers -------------------------------------------------------------------------


def _customers(rng: random.Random, count: int) -> tuple[list[Row], list[_Customer]]:
    signups = sorted(_instant(rng, _START, _SIGNUPS_END) for _ in range(count))
    emails: set[str] = {CANARIES["email"]}
    rows: list[Row] = []
    people: list[_Customer] = []
    for customer_id, created_at in enumerate(signups, start=1):
        country = rng.choices(_COUNTRIES, _COUNTRY_WEIGHTS)[0]
        tier = rng.choices(_PLAN_TIERS, (60, 30, 10))[0]
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        email = _email(rng, first, last, tier, emails)
        row: Row = (
            customer_id, f"{first} {last}", email, _phone(rng, country), _iban(rng, country),
            _ssn(rng), _birth_date(rng), country.code, tier, created_at,
        )  # fmt: skip
        if customer_id == CANARY_CUSTOMER_ID:
            country = _COUNTRIES[0]
            row = _canary_customer(row)
        rows.append(row)
        people.append(_Customer(customer_id, country, tier, created_at))
    return rows, people


def _canary_customer(row: Row) -> Row:
    c = CANARIES
    birth = dt.date.fromisoformat(c["date_of_birth"])
    return (row[0], c["full_name"], c["email"], c["phone"], c["iban"], c["ssn"], birth,
            "DE", *row[8:])  # fmt: skip


def _email(rng: random.Random, first: str, last: str, tier: str, taken: set[str]) -> str:
    first, last = _ascii(first), _ascii(last)
    patterns = (f"{first}.{last}", f"{first}{last}", f"{first[0]}.{last}", f"{first}_{last}")
    local = rng.choice(patterns)
    domain = rng.choice(_COMPANY_DOMAINS if tier == "enterprise" else _MAIL_DOMAINS)
    email = f"{local}@{domain}"
    while email in taken:
        email = f"{local}{rng.randint(1, 999)}@{domain}"
    taken.add(email)
    return email


def _ascii(name: str) -> str:
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def _phone(rng: random.Random, country: _Country) -> str:
    # The first group stays in 100-899, so the canary's "999" never occurs by chance.
    groups = (rng.randint(100, 899), rng.randint(0, 999), rng.randint(0, 9999))
    return "{} {} {:03d} {:04d}".format(country.dial, *groups)


def _iban(rng: random.Random, country: _Country) -> str:
    bban = "".join(
        rng.choice(string.ascii_uppercase) if kind == "a" else rng.choice(string.digits)
        for kind in country.bban
    )
    return iban_with_check(country.code, bban)


def iban_with_check(country_code: str, bban: str) -> str:
    """The IBAN for ``bban`` in ``country_code``, with ISO 13616 mod-97 check digits."""
    rearranged = bban + country_code + "00"
    number = int("".join(str(int(ch, 36)) for ch in rearranged))
    return f"{country_code}{98 - number % 97:02d}{bban}"


def _ssn(rng: random.Random) -> str:
    # Areas 9xx are never issued, so the canary's 999 cannot collide; 666 is skipped too.
    area = rng.choice(_SSN_AREAS)
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _birth_date(rng: random.Random) -> dt.date:
    return dt.date(1946, 1, 1) + dt.timedelta(days=rng.randrange(60 * 365))


# --- accounts, orders, payments, tickets -----------------------------------------------


def _accounts(rng: random.Random, people: Sequence[_Customer]) -> list[Row]:
    drafts: list[list[object]] = []
    for person in people:
        for n in range(rng.choices((1, 2, 3), (55, 30, 15))[0]):
            minutes = rng.randint(1, 60 if n == 0 else 90_000)  # the first one at sign-up
            opened = person.created_at + dt.timedelta(minutes=minutes)
            iban = _iban(rng, person.country)
            if person.id == CANARY_CUSTOMER_ID and n == 0:
                iban = CANARIES["account_iban"]
            status = rng.choices(("active", "frozen", "closed"), (90, 3, 7))[0]
            balance = _money(rng.randint(0, 2_500_000) if status != "closed" else 0)
            drafts.append([0, person.id, iban, person.country.currency, balance, status, opened])
    return _numbered(drafts, time_at=6)


def _orders(rng: random.Random, people: Sequence[_Customer]) -> list[_Order]:
    taken: set[str] = set()
    rows: list[_Order] = []
    for person in people:
        count = rng.choices(range(1, 10), (10, 14, 16, 16, 14, 11, 8, 6, 5))[0]
        if person.id == CANARY_CUSTOMER_ID:
            count = max(count, 3)
        for n in range(count):
            status = rng.choices(_ORDER_STATUSES, (70, 8, 7, 7, 8))[0]
            if person.id == CANARY_CUSTOMER_ID and n == 0:
                status = "paid"
            amount = _money(_order_cents(rng, person.plan_tier))
            created = _instant(rng, person.created_at, _END)
            currency = person.country.currency
            rows.append(_Order(_order_id(rng, taken), person.id, amount, currency, status, created))
    return rows


def _order_cents(rng: random.Random, tier: str) -> int:
    scale = {"free": 4_000, "pro": 12_000, "enterprise": 60_000}[tier]
    return max(199, int(rng.lognormvariate(0, 0.8) * scale))


def _order_id(rng: random.Random, taken: set[str]) -> str:
    while True:
        order_id = "ord_" + "".join(rng.choice(_BASE36) for _ in range(8))
        if order_id not in taken:
            taken.add(order_id)
            return order_id


def _payments(rng: random.Random, orders: Sequence[_Order]) -> list[Row]:
    drafts: list[list[object]] = []
    canary_card = True
    for order in orders:
        status = _PAYMENT_FOR_ORDER.get(order.status)
        if status is None:
            continue
        method = rng.choices(_METHODS, (60, 20, 12, 8))[0]
        if order.customer_id == CANARY_CUSTOMER_ID and canary_card:
            method, canary_card = "card", False
        last4 = f"{rng.randint(0, 9999):04d}" if method == "card" else None
        paid_at = order.created_at + dt.timedelta(seconds=rng.randint(5, 900))
        head = [0, order.id, order.customer_id, order.amount, method, last4]
        if status == "succeeded" and rng.random() < 0.08:
            drafts.append([*head, "failed", paid_at - dt.timedelta(seconds=rng.randint(1, 4))])
        drafts.append([*head, status, paid_at])
    return _numbered(drafts, time_at=7)


def _tickets(
    rng: random.Random, people: Sequence[_Customer], orders: Sequence[_Order]
) -> list[Row]:
    orders_of: dict[int, list[str]] = {}
    for order in orders:
        orders_of.setdefault(order.customer_id, []).append(order.id)
    drafts: list[list[object]] = []
    for person in people:
        count = rng.choices((0, 1, 2, 3), (55, 30, 10, 5))[0]
        if person.id == CANARY_CUSTOMER_ID:
            count = max(count, 1)
        for n in range(count):
            created = _instant(rng, person.created_at, _END)
            status = rng.choices(("open", "pending", "closed"), (20, 15, 65))[0]
            assignee = rng.choice(_ASSIGNEES) if status == "closed" or rng.random() < 0.85 else None
            if person.id == CANARY_CUSTOMER_ID and n == 0:
                status, assignee = "open", _ASSIGNEES[0]
            subject = _ticket_subject(rng, person, orders_of.get(person.id, []))
            drafts.append([0, person.id, assignee, subject, status, created])
    return _numbered(drafts, time_at=5, ident=lambda n: f"TICKET-{1000 + n}")


def _ticket_subject(rng: random.Random, person: _Customer, order_ids: Sequence[str]) -> str:
    if order_ids and rng.random() < 0.3:
        return rng.choice(_ORDER_SUBJECTS).format(order=rng.choice(order_ids))
    others = [t for t in _PLAN_TIERS if t != person.plan_tier]
    return rng.choice(_TICKET_SUBJECTS).format(tier=rng.choice(others))


# --- helpers ---------------------------------------------------------------------------


def _numbered(
    drafts: list[list[object]], *, time_at: int, ident: Callable[[int], object] = int
) -> list[Row]:
    """Rows with ids handed out in time order, as a real sequence would have (stable sort)."""
    drafts.sort(key=lambda d: cast(dt.datetime, d[time_at]))
    return [(ident(n), *draft[1:]) for n, draft in enumerate(drafts, start=1)]


def _instant(rng: random.Random, start: dt.datetime, end: dt.datetime) -> dt.datetime:
    """A whole second, uniformly between ``start`` and ``end``."""
    span = int((end - start).total_seconds())
    return (start + dt.timedelta(seconds=rng.randint(0, max(span, 0)))).replace(microsecond=0)


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"
