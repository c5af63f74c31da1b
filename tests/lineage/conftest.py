"""A fixed, hand-built schema: a small fintech with tables, views and a view over a view."""

from __future__ import annotations

import pytest

from querygate.lineage import Column, Relation, Schema


def _table(schema: str, name: str, columns: str, pk: str = "id") -> Relation:
    parsed = tuple(Column(*part.strip().split(" ", 1)) for part in columns.split(","))
    return Relation(schema, name, parsed, (pk,) if pk else ())


def _view(schema: str, name: str, columns: str, sql: str) -> Relation:
    parsed = tuple(Column(n.strip(), "text") for n in columns.split(","))
    return Relation(schema, name, parsed, (), view_sql=sql)


RELATIONS = [
    _table(
        "public",
        "customers",
        "id bigint, full_name text, email text, iban text, ssn text, date_of_birth date,"
        " country text, created_at timestamp with time zone",
    ),
    _table(
        "public",
        "accounts",
        "id bigint, customer_id bigint, iban text, balance numeric, currency text, opened_at date",
    ),
    _table(
        "public",
        "orders",
        "id text, customer_id bigint, amount numeric, status text,"
        " created_at timestamp with time zone",
    ),
    _table(
        "public",
        "payments",
        "id bigint, order_id text, account_id bigint, amount numeric, card_last4 text,"
        " paid_at timestamp with time zone",
    ),
    _table(
        "public",
        "support_tickets",
        "id bigint, customer_id bigint, subject text, body text, status text,"
        " created_at timestamp with time zone",
    ),
    _table("hr", "employees", "id bigint, name text, salary numeric, manager_id bigint"),
    _view(
        "public",
        "customer_contacts",
        "id, full_name, email",
        " SELECT c.id,\n    c.full_name,\n    c.email\n   FROM customers c;",
    ),
    _view(
        "public",
        "contact_emails",
        "id, email",
        " SELECT customer_contacts.id,\n    customer_contacts.email\n"
        "   FROM customer_contacts;",
    ),
    _view(
        "public",
        "customer_summary",
        "id, full_name, email_upper, country, order_count",
        " SELECT c.id, c.full_name, upper(c.email) AS email_upper, c.country,"
        " count(o.id) AS order_count FROM customers c LEFT JOIN orders o"
        " ON o.customer_id = c.id GROUP BY c.id;",
    ),
    _view(
        "public",
        "eu_customer_summary",
        "id, full_name, email_upper",
        " SELECT s.id, s.full_name, s.email_upper FROM customer_summary s"
        " WHERE s.country = ANY (ARRAY['DE'::text, 'FR'::text]);",
    ),
    _view(
        "public",
        "identity_view",
        "id, ssn_hint, dob",
        " SELECT customers.id, \"left\"(customers.ssn, 3) AS ssn_hint,"
        " customers.date_of_birth AS dob FROM customers;",
    ),
]

FUNCTIONS = {
    "public.customer_ssn": "SELECT ssn FROM customers WHERE id = $1",
    "public.opaque": "BEGIN RETURN 1; END",
    "public.masked_ssn": "SELECT 'xxx-' || right(customer_ssn($1), 4)",
    "public.loop_a": "SELECT loop_b($1)",
    "public.loop_b": "SELECT loop_a($1) FROM orders",
}

SCHEMA = Schema(
    relations={r.qualified: r for r in RELATIONS},
    search_path=("public",),
    sql_functions=FUNCTIONS,
)


@pytest.fixture(scope="session")
def schema() -> Schema:
    return SCHEMA
