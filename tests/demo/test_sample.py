"""The demo data set and the demo project: loadable, deterministic, and every function runs."""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from querygate.demo._sample import CANARIES, TABLES, load_sample
from querygate.errors import QuerygateError
from querygate.project import ROLE_KEYS

PROJECT = Path(__file__).parents[2] / "querygate" / "demo" / "project"
SMALL = 200  # customers per load in these tests: fast, still enough for every function

DECISIONS = {"allow", "mask.full", "mask.last4", "mask.email", "mask.year", "mask.hash",
             "mask.null", "omit", "deny"}  # fmt: skip
TAGS = {"pii.contact", "pii.financial", "pii.government_id", "pii.birthdate", "pii.name"}
TYPES = {"int", "bigint", "numeric", "text", "bool", "date", "timestamptz", "uuid"}
IBAN_LENGTHS = {"DE": 22, "FR": 27, "NL": 18, "IT": 27, "ES": 24, "BE": 16, "IE": 22, "GB": 22}
AGGREGATES = {"revenue_by_plan", "customers_by_country"}  # return no rows about one person

REQUIRED = {
    "get_customer_by_id": {"customer_id": "int"},
    "search_customers": {"email_prefix": "text"},
    "get_order_by_id": {"order_id": "text"},
    "list_customer_orders": {"customer_id": "int"},
    "list_customer_payments": {"customer_id": "int"},
    "get_account_balances": {"customer_id": "int"},
    "list_open_tickets_for": {"assignee": "text"},
    "get_ticket": {"ticket_id": "text"},
    "revenue_by_plan": {"since": "date"},
    "customers_created_between": {"from_date": "date", "to_date": "date"},
}


def connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True)


@pytest.fixture
def other_db(admin_url: str) -> Iterator[str]:
    """A second empty database, for comparing two loads."""
    name = f"qg_test_{uuid.uuid4().hex[:12]}"
    with connect(admin_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(admin_url)
    params["dbname"] = name
    yield make_conninfo("", **params)
    with connect(admin_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def loaded(fresh_db: str) -> Iterator[psycopg.Connection[Any]]:
    with connect(fresh_db) as conn:
        load_sample(conn, customers=SMALL)
        yield conn


# --- the data set ----------------------------------------------------------------------


def test_load_creates_tables_with_expected_counts(fresh_db: str) -> None:
    with connect(fresh_db) as conn:
        counts = load_sample(conn, customers=SMALL)
        assert set(counts) == set(TABLES)
        for table in TABLES:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (counts[table],)
        overview = conn.execute("SELECT count(*), sum(order_count) FROM customer_overview")
        assert overview.fetchone() == (SMALL, counts["orders"])
    assert counts["customers"] == SMALL
    assert SMALL <= counts["accounts"] <= 3 * SMALL
    assert 2 * SMALL <= counts["orders"] <= 9 * SMALL
    assert counts["payments"] >= counts["orders"] // 2
    assert counts["support_tickets"] >= SMALL // 5


def test_keys_and_indexes_are_added(loaded: psycopg.Connection[Any]) -> None:
    kinds = loaded.execute(
        "SELECT conrelid::regclass::text, contype, count(*) FROM pg_constraint"
        " WHERE connamespace = 'public'::regnamespace GROUP BY 1, 2"
    ).fetchall()
    found = {(table, kind): n for table, kind, n in kinds}
    for table in TABLES:
        assert found[(table, "p")] == 1
    assert found[("payments", "f")] == 2
    for table in ("accounts", "orders", "support_tickets"):
        assert found[(table, "f")] == 1
    assert loaded.execute("SELECT to_regclass('customers_email_key')").fetchone() != (None,)


def test_values_look_real(loaded: psycopg.Connection[Any]) -> None:
    customers = loaded.execute("SELECT email, ssn, iban, country, plan_tier FROM customers")
    rows = customers.fetchall()
    assert len({r[0] for r in rows}) == len(rows)
    for email, ssn, iban, country, tier in rows:
        assert re.fullmatch(r"[a-z0-9._]+@[a-z.]+\.(net|org|example)", email)
        assert re.fullmatch(r"\d{3}-\d{2}-\d{4}", ssn)
        assert valid_iban(iban) and iban[:2] == country
        assert tier in {"free", "pro", "enterprise"}
    for (iban,) in loaded.execute("SELECT iban FROM accounts"):
        assert valid_iban(iban)
    for (order_id,) in loaded.execute("SELECT id FROM orders"):
        assert re.fullmatch(r"ord_[0-9a-z]{8}", order_id)
    for (ticket_id,) in loaded.execute("SELECT id FROM support_tickets"):
        assert re.fullmatch(r"TICKET-\d{4,}", ticket_id)


def test_timestamps_are_in_2024_to_2026(loaded: psycopg.Connection[Any]) -> None:
    columns = {"customers": "created_at", "accounts": "opened_at", "orders": "created_at",
               "payments": "created_at", "support_tickets": "created_at"}  # fmt: skip
    for table, column in columns.items():
        bounds = loaded.execute(f"SELECT min({column}), max({column}) FROM {table}").fetchone()
        assert bounds is not None
        low, high = bounds
        assert low.year >= 2024 and high.year <= 2026, table


def test_ticket_statuses_and_assignees(loaded: psycopg.Connection[Any]) -> None:
    statuses = {r[0] for r in loaded.execute("SELECT DISTINCT status FROM support_tickets")}
    assert statuses == {"open", "pending", "closed"}
    alice = loaded.execute(
        "SELECT count(*) FROM support_tickets WHERE assignee_email = 'alice@example.com'"
    ).fetchone()
    assert alice is not None and alice[0] > 0


def test_same_seed_gives_identical_rows(fresh_db: str, other_db: str) -> None:
    digests = []
    for url in (fresh_db, other_db):
        with connect(url) as conn:
            load_sample(conn, customers=SMALL, seed=7)
            digests.append(table_digests(conn))
    assert digests[0] == digests[1]


def test_another_seed_gives_other_rows(fresh_db: str, other_db: str) -> None:
    digests = []
    for url, seed in ((fresh_db, 1), (other_db, 2)):
        with connect(url) as conn:
            load_sample(conn, customers=SMALL, seed=seed)
            digests.append(table_digests(conn))
    for table in TABLES:
        assert digests[0][table] != digests[1][table], table


def test_refuses_to_load_twice(loaded: psycopg.Connection[Any]) -> None:
    with pytest.raises(QuerygateError, match="already exist"):
        load_sample(loaded, customers=SMALL)
    assert loaded.execute("SELECT count(*) FROM customers").fetchone() == (SMALL,)


def test_refuses_too_few_customers(fresh_db: str) -> None:
    with connect(fresh_db) as conn, pytest.raises(ValueError, match="42"):
        load_sample(conn, customers=10)


def test_canaries_are_on_customer_42_only(loaded: psycopg.Connection[Any]) -> None:
    row = loaded.execute(
        "SELECT full_name, email, phone, iban, ssn, date_of_birth::text FROM customers"
        " WHERE id = 42"
    ).fetchone()
    keys = ("full_name", "email", "phone", "iban", "ssn", "date_of_birth")
    assert row == tuple(CANARIES[k] for k in keys)
    account = loaded.execute("SELECT customer_id FROM accounts WHERE iban = %s",
                             [CANARIES["account_iban"]]).fetchall()  # fmt: skip
    assert account == [(42,)]
    for value in CANARIES.values():
        hits = loaded.execute(
            "SELECT count(*) FROM customers c WHERE strpos(c::text, %s) > 0", [value]
        ).fetchone()
        assert hits == (1 if value != CANARIES["account_iban"] else 0,), value


def test_customer_42_has_something_everywhere(loaded: psycopg.Connection[Any]) -> None:
    for table in ("accounts", "orders", "payments", "support_tickets"):
        count = loaded.execute(f"SELECT count(*) FROM {table} WHERE customer_id = 42").fetchone()
        assert count is not None and count[0] > 0, table
    open_for_alice = loaded.execute(
        "SELECT count(*) FROM support_tickets WHERE customer_id = 42"
        " AND status = 'open' AND assignee_email = 'alice@example.com'"
    ).fetchone()
    assert open_for_alice is not None and open_for_alice[0] >= 1


def test_default_size_loads_in_a_few_seconds(fresh_db: str) -> None:
    with connect(fresh_db) as conn:
        started = time.perf_counter()
        counts = load_sample(conn)
        elapsed = time.perf_counter() - started
    assert counts["customers"] == 5000
    assert sum(counts.values()) > 20_000
    assert elapsed < 15, f"loading took {elapsed:.1f} s"


# --- the demo project: query files -----------------------------------------------------


@dataclass
class Function:
    name: str
    path: Path
    description: list[str] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    sql_lines: list[str] = field(default_factory=list)

    @property
    def sql(self) -> str:
        return "\n".join(self.sql_lines).strip()


_NAME = re.compile(r"--\s*name:\s*(\S+)\s*$")
_PARAM = re.compile(r"--\s*param\s+([A-Za-z_]\w*)\s*:\s*([a-z]+(?:\[\])?)\s*$")
_PLACEHOLDER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def parse_query_file(path: Path) -> list[Function]:
    """A deliberately small reading of docs/contracts.md, "Query files and parameter types"."""
    functions: list[Function] = []
    in_header = False
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if match := _NAME.match(line):
            functions.append(Function(match.group(1), path))
            in_header = True
        elif not functions:
            assert not line.strip() or line.startswith("--"), f"{path}:{number}: SQL before a name"
        elif in_header and line.startswith("--"):
            if param := _PARAM.match(line):
                functions[-1].params[param.group(1)] = param.group(2)
            else:
                assert not line.startswith("-- param"), f"{path}:{number}: bad param line"
                functions[-1].description.append(line[2:].strip())
        else:
            in_header = False
            functions[-1].sql_lines.append(line)
    return functions


def all_functions() -> list[Function]:
    files = sorted((PROJECT / "queries").glob("*.sql"))
    return [f for path in files for f in parse_query_file(path)]


def to_psycopg(sql: str) -> str:
    """``:name`` to ``%(name)s``, leaving ``::casts`` alone and escaping literal ``%``."""
    return _PLACEHOLDER.sub(r"%(\1)s", sql.replace("%", "%%"))


def test_placeholder_rewrite_leaves_casts_alone() -> None:
    assert to_psycopg("x = :a::date + 1 AND y LIKE :b || '%'") == (
        "x = %(a)s::date + 1 AND y LIKE %(b)s || '%%'"
    )


def test_query_files_declare_well_formed_functions() -> None:
    functions = all_functions()
    names = [f.name for f in functions]
    assert len(names) == len(set(names)) >= 10
    for f in functions:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", f.name), f.name
        assert f.description and all(f.description), f.name
        assert f.sql.endswith(";") and f.sql.count(";") == 1, f.name
        assert set(f.params.values()) <= TYPES | {t + "[]" for t in TYPES}, f.name
        assert set(_PLACEHOLDER.findall(f.sql)) == set(f.params), f.name
    declared = {f.name: f.params for f in functions}
    for name, params in REQUIRED.items():
        assert declared.get(name) == params, name
    get_customer = next(f for f in functions if f.name == "get_customer_by_id")
    assert get_customer.sql == "SELECT * FROM customers WHERE id = :customer_id;"


def sample_values(conn: psycopg.Connection[Any]) -> dict[tuple[str, str], object]:
    order = conn.execute("SELECT min(id) FROM orders WHERE customer_id = 42").fetchone()
    ticket = conn.execute("SELECT min(id) FROM support_tickets WHERE customer_id = 42").fetchone()
    assert order is not None and ticket is not None
    return {
        ("customer_id", "int"): 42,
        ("email_prefix", "text"): "canary",
        ("order_id", "text"): order[0],
        ("ticket_id", "text"): ticket[0],
        ("assignee", "text"): "alice@example.com",
        ("since", "date"): dt.date(2024, 1, 1),
        ("since", "timestamptz"): dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        ("from_date", "date"): dt.date(2024, 1, 1),
        ("to_date", "date"): dt.date(2024, 12, 31),
    }


def test_every_function_runs_on_the_sample(loaded: psycopg.Connection[Any]) -> None:
    values = sample_values(loaded)
    loaded.read_only = True
    for f in all_functions():
        params = {name: values[(name, kind)] for name, kind in f.params.items()}
        with loaded.cursor() as cur:
            cur.execute(to_psycopg(f.sql), params)
            columns = [d.name for d in cur.description or []]
            rows = cur.fetchall()
        assert rows, f"{f.name} returned no rows for {params}"
        if f.name not in AGGREGATES:
            assert has_subject_column(f.sql, columns), f"{f.name} does not return a customer id"


def has_subject_column(sql: str, columns: list[str]) -> bool:
    if "customer_id" in columns:
        return True
    main = re.search(r"\bFROM\s+(\w+)", sql, re.IGNORECASE)
    return (
        main is not None
        and main.group(1) in {"customers", "customer_overview"}
        and ("id" in columns or sql.startswith("SELECT *"))
    )


# --- the demo project: querygate.yaml --------------------------------------------------


def project() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((PROJECT / "querygate.yaml").read_text())
    return loaded


def test_project_settings() -> None:
    settings = project()
    assert settings["database"] == {"url": "$env:QUERYGATE_DATABASE_URL"}
    assert settings["audit"] == {"url": None, "readers": ["compliance", "admin"]}
    assert settings["identity"] == {"admins": ["admin"]}  # who revokes and offboards (console)
    assert settings["secret_key"] == "$env:QUERYGATE_SECRET_KEY"


def test_roles_use_only_known_decisions_and_tags() -> None:
    roles = project()["roles"]
    assert set(roles) == {"support", "billing", "compliance", "admin"}
    names = [f.name for f in all_functions()]
    for role, grant in roles.items():
        assert {"functions", "fields"} <= set(grant) <= set(ROLE_KEYS), role
        assert set(grant["fields"].values()) <= DECISIONS, role
        assert set(grant["fields"]) <= TAGS, role
        for pattern in grant["functions"]:
            assert fnmatch.filter(names, pattern), f"{role}: {pattern} matches no function"
    assert roles["admin"]["fields"] == dict.fromkeys(TAGS, "allow")
    assert roles["support"]["fields"]["pii.government_id"] == "omit"


def test_classification_names_real_columns(loaded: psycopg.Connection[Any]) -> None:
    real = {
        (f"{schema}.{table}", column)
        for schema, table, column in loaded.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public'"
        )
    }
    classification = project()["classification"]
    for table, spec in classification.items():
        assert set(spec) <= {"subject", "subject_ref", "columns"}, table
        for column, tags in spec.get("columns", {}).items():
            assert (table, column) in real, f"{table}.{column}"
            assert tags and set(tags) <= TAGS, f"{table}.{column}"
        for subject, column in spec.get("subject_ref", {}).items():
            assert subject == "customer" and (table, column) in real, table
    assert classification["public.customers"]["subject"] == "customer"
    subject_refs = {t for t, spec in classification.items() if "subject_ref" in spec}
    assert subject_refs == {f"public.{t}" for t in TABLES if t != "customers"}


# --- helpers ---------------------------------------------------------------------------


def table_digests(conn: psycopg.Connection[Any]) -> dict[str, str]:
    digests = {}
    for table in (*TABLES, "customer_overview"):
        row = conn.execute(
            f"SELECT md5(string_agg(t::text, E'\\n' ORDER BY t.id)), count(*) FROM {table} t"
        ).fetchone()
        assert row is not None and row[1] > 0
        digests[table] = str(row[0])
    return digests


def valid_iban(iban: str) -> bool:
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum():
        return False
    digits = "".join(str(int(ch, 36)) for ch in iban[4:] + iban[:4])
    return int(digits) % 97 == 1
