"""load_schema against a real PostgreSQL: tables, views over views, keys, and then lineage."""

from __future__ import annotations

import asyncio

import psycopg

from querygate.lineage import Column, Schema, analyze, load_schema

DDL = """
CREATE SCHEMA crm;
CREATE TABLE crm.customers (
    id bigint PRIMARY KEY, full_name text, email text, ssn text, dropped int, dob date
);
ALTER TABLE crm.customers DROP COLUMN dropped;
CREATE TABLE orders (
    id text, line int, customer_id bigint REFERENCES crm.customers, amount numeric(10, 2),
    PRIMARY KEY (id, line)
);
CREATE TABLE events (id bigint, at date) PARTITION BY RANGE (at);
CREATE VIEW customer_contacts AS
    SELECT c.id, c.email, upper(c.full_name) AS name FROM crm.customers c;
CREATE VIEW contact_emails AS SELECT id, email FROM customer_contacts WHERE id > 0;
CREATE MATERIALIZED VIEW order_totals AS
    SELECT customer_id, sum(amount) AS total FROM orders GROUP BY customer_id;
CREATE FUNCTION ssn_of(bigint) RETURNS text LANGUAGE sql
    AS 'SELECT ssn FROM crm.customers WHERE id = $1';
CREATE SCHEMA querygate;
CREATE TABLE querygate.audit (id bigint);
"""


async def _load(url: str) -> Schema:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        return await load_schema(conn)


def test_load_schema_and_trace_through_a_view_over_a_view(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(DDL)
    schema = asyncio.run(_load(fresh_db))

    assert set(schema.relations) == {
        "crm.customers",
        "public.orders",
        "public.events",
        "public.customer_contacts",
        "public.contact_emails",
        "public.order_totals",
    }
    assert schema.search_path == ("public",)
    customers = schema.relations["crm.customers"]
    assert customers.columns == (
        Column("id", "bigint"),
        Column("full_name", "text"),
        Column("email", "text"),
        Column("ssn", "text"),
        Column("dob", "date"),
    )
    assert customers.primary_key == ("id",)
    assert customers.view_sql is None and customers.oid > 0
    orders = schema.relations["public.orders"]
    assert orders.primary_key == ("id", "line")
    assert Column("amount", "numeric(10,2)") in orders.columns
    contacts = schema.relations["public.contact_emails"]
    assert contacts.primary_key == () and contacts.view_sql is not None
    assert [c.name for c in contacts.columns] == ["id", "email"]
    assert schema.relations["public.order_totals"].view_sql is not None
    assert "public.ssn_of" in schema.sql_functions

    result = analyze("SELECT * FROM contact_emails WHERE id = :id", schema)
    assert [(c.name, c.sources, c.direct) for c in result.columns] == [
        ("id", frozenset({"crm.customers.id"}), True),
        ("email", frozenset({"crm.customers.email"}), True),
    ]
    assert result.tables == frozenset({"crm.customers"})
    assert result.filters == frozenset({"crm.customers.id"})
    assert result.equalities == {":id": frozenset({"crm.customers.id"})}

    totals = analyze("SELECT total FROM order_totals", schema)
    assert totals.columns[0].sources == frozenset({"public.orders.amount"})
    leaked = analyze("SELECT ssn_of(1) AS s", schema)
    assert "crm.customers.ssn" in leaked.columns[0].sources


def test_a_column_added_later_is_traced_by_select_star(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE people (id bigint PRIMARY KEY, name text)")
        before = analyze("SELECT * FROM people", asyncio.run(_load(fresh_db)))
        conn.execute("ALTER TABLE people ADD COLUMN passport text")
        after = analyze("SELECT * FROM people", asyncio.run(_load(fresh_db)))
    assert [c.name for c in before.columns] == ["id", "name"]
    assert after.columns[-1].sources == frozenset({"public.people.passport"})
