"""The calls the gateway benchmarks make, each with its bare equivalent, and the bench project."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.harness import add_bench_user, demo_database, free_port, write_project
from querygate.provision import DEFAULT_GATEWAY_ROLE, url_for

BENCH_SQL = """\
-- name: list_orders_page
-- One page of 100 orders after a given id.
-- param after: text
SELECT o.id, o.customer_id, o.amount, o.status, o.created_at
FROM orders o WHERE o.id > :after ORDER BY o.id LIMIT 100;

-- name: list_customers_page
-- One page of 50 customers after a given id: four masked columns, 50 subjects.
-- param after: int
SELECT c.id, c.full_name, c.email, c.phone, c.iban, c.date_of_birth, c.country
FROM customers c WHERE c.id > :after ORDER BY c.id LIMIT 50;

-- name: export_orders
-- Orders with the customer's email and IBAN: the export with two masked columns.
-- param n: int
SELECT o.id, o.customer_id, o.amount, o.status, c.email, c.iban
FROM orders o JOIN customers c ON c.id = o.customer_id ORDER BY o.id LIMIT :n;
"""
# appended under the demo's `roles:` (the last section of its querygate.yaml)
BENCH_ROLE = """
  bench:
    functions: [get_customer_by_id, list_orders_page, list_customers_page, export_orders]
    adhoc: true
    fields:
      pii.name: allow
      pii.contact: mask.email
      pii.financial: mask.last4
      pii.government_id: omit
      pii.birthdate: mask.year
"""
BENCH_USER = "bench@example.com"
ADHOC_SQL = "SELECT c.id, c.full_name, c.email, c.iban, c.date_of_birth FROM customers c WHERE c.id = %d"


@dataclass(frozen=True)
class Scenario:
    """One kind of call: the gateway's path and body, the bare endpoint's, and how many distinct
    parameter values to draw from (``%d``/``%x`` in the bodies; 0 means the customer count)."""

    name: str
    what: str
    gateway: str
    bare: str
    body: str
    bare_body: str = ""
    values: int = 0
    concurrency: tuple[int, ...] = (16,)


SCENARIOS = {s.name: s for s in [
    Scenario("lookup", "one-row lookup (get_customer_by_id)", "/v1/call/get_customer_by_id",
             "/call/get_customer_by_id", '{"params": {"customer_id": %d}, "reason": "bench"}',
             concurrency=(1, 16)),
    Scenario("page", "page of 50 customers, 4 masked columns, 50 subjects",
             "/v1/call/list_customers_page", "/call/list_customers_page",
             '{"params": {"after": %d}, "reason": "bench"}', values=-50),
    Scenario("orders", "page of 100 orders, no masks (the earlier page scenario)",
             "/v1/call/list_orders_page", "/call/list_orders_page",
             '{"params": {"after": "ord_%x"}, "reason": "bench"}', values=90000),
    Scenario("adhoc", "ad-hoc SQL, one customer, 2 masked columns", "/v1/sql", "/sql",
             '{"sql": "' + ADHOC_SQL + '", "reason": "bench"}', '{"sql": "' + ADHOC_SQL + '"}'),
    Scenario("pgwire", "one-row lookup through the PostgreSQL front door (asyncpg); bare: "
             "the same SELECT on PostgreSQL itself", "SELECT * FROM get_customer_by_id($1)",
             "SELECT * FROM customers WHERE id = $1", "", values=400, concurrency=(1, 16)),
]}
DEFAULT = ("lookup", "page", "adhoc", "pgwire")


def prepare(folder: Path, server: str, customers: int, *,
            detector: bool = True) -> tuple[str, Path, str, int]:
    """On ``server``: database ``bench`` with the demo data; the project in ``folder`` (the demo,
    the bench functions and role, the PostgreSQL front door on a free port); a token for the
    bench user. Returns (superuser URL of the database, project folder, token, front door port).
    ``detector=False`` switches the insider detector off (it then runs elsewhere)."""
    admin = demo_database(server, "bench", customers)
    gateway_url = url_for(admin, user=DEFAULT_GATEWAY_ROLE)
    pg_port = free_port()
    config = BENCH_ROLE + f"\npostgres:\n  listen: 127.0.0.1:{pg_port}\n"
    project = write_project(folder, gateway_url, queries={"bench.sql": BENCH_SQL}, config=config)
    if not detector:
        yaml = project / "querygate.yaml"
        yaml.write_text(yaml.read_text().replace("detect:\n  enabled: true",
                                                 "detect:\n  enabled: false"))
    return admin, project, add_bench_user(gateway_url, BENCH_USER, ["bench"]), pg_port


def stream_export(url: str, token: str, rows: int) -> tuple[int, float]:
    """POST an export of ``rows`` orders to ``url`` and read it to the last line: (lines read,
    seconds taken)."""
    start, count = time.perf_counter(), 0
    with httpx.stream("POST", url, timeout=600, json={"params": {"n": rows}, "reason": "bench"},
                      headers={"Authorization": f"Bearer {token}"}) as response:
        response.raise_for_status()
        for _ in response.iter_lines():
            count += 1
    return count, time.perf_counter() - start
