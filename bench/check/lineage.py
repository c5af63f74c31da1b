"""Lineage speed: one 40-line analytical query (5 CTEs, 6 joins), and a 500-function catalog.

Run by hand, from the repository root:  .venv/bin/python -m bench.check.lineage

It starts the embedded PostgreSQL in a temporary folder and loads the demo data set, so
`check` runs against a live schema exactly as in production. It times the lineage analysis of
the query below 30 times, then parses, analyses and describes a 500-function catalog once.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from bench.harness import arguments
from querygate.catalog import load_catalog
from querygate.demo import load_sample, start_embedded, stop_embedded
from querygate.gateway import analyse_catalog
from querygate.lineage import analyze, load_schema
from querygate.policy import Classification

ANALYTICAL = """
WITH recent_orders AS (
    SELECT o.id, o.customer_id, o.amount, o.created_at
    FROM orders o
    WHERE o.created_at >= now() - interval '365 days'
      AND o.status = 'paid'),
order_totals AS (
    SELECT ro.customer_id, count(*) AS n, sum(ro.amount) AS total FROM recent_orders ro
    GROUP BY ro.customer_id),
failed AS (
    SELECT p.customer_id, count(*) AS failures FROM payments p
    WHERE p.status = 'failed' GROUP BY p.customer_id),
open_tickets AS (
    SELECT t.customer_id, count(*) AS open_count FROM support_tickets t
    WHERE t.status = 'open' GROUP BY t.customer_id),
balances AS (
    SELECT a.customer_id, sum(a.balance) AS balance, max(a.iban) AS main_iban FROM accounts a
    GROUP BY a.customer_id)
SELECT c.id,
       c.full_name,
       upper(c.email) AS email,
       c.country,
       ot.n AS orders_last_year,
       ot.total,
       coalesce(f.failures, 0) AS failures,
       coalesce(tk.open_count, 0) AS tickets,
       b.balance,
       right(b.main_iban, 4) AS iban_tail,
       CASE WHEN c.date_of_birth < date '1970-01-01' THEN 'senior' ELSE 'other' END AS band,
       rank() OVER (PARTITION BY c.country ORDER BY ot.total DESC) AS country_rank
FROM customers c
JOIN order_totals ot ON ot.customer_id = c.id
LEFT JOIN failed f ON f.customer_id = c.id
LEFT JOIN open_tickets tk ON tk.customer_id = c.id
LEFT JOIN balances b ON b.customer_id = c.id
LEFT JOIN accounts a2 ON a2.customer_id = c.id AND a2.currency = 'EUR'
JOIN customer_overview v ON v.id = c.id
WHERE c.plan_tier IN ('pro', 'enterprise')
  AND ot.total > 100
  AND c.created_at < now()
ORDER BY ot.total DESC
LIMIT 100
"""

TEMPLATES = [
    "SELECT * FROM customers WHERE id = :customer_id",
    "SELECT o.id, o.amount, c.email FROM orders o JOIN customers c ON c.id = o.customer_id "
    "WHERE o.customer_id = :customer_id",
    "SELECT p.id, p.card_last4, upper(c.full_name) AS name FROM payments p "
    "JOIN customers c ON c.id = p.customer_id WHERE p.created_at >= :since",
    ANALYTICAL.replace("LIMIT 100", "LIMIT :n"),
    "SELECT t.id, t.subject, c.iban FROM support_tickets t JOIN customers c ON "
    "c.id = t.customer_id WHERE t.assignee_email = :assignee",
]
TYPES = {"customer_id": "int", "since": "timestamptz", "n": "int", "assignee": "text"}


def write_catalog(folder: Path, count: int) -> None:
    from querygate.catalog import placeholders

    blocks = []
    for i in range(count):
        sql = TEMPLATES[i % len(TEMPLATES)]
        names = sorted({n for _, _, n in placeholders(sql)})
        params = "".join(f"-- param {n}: {TYPES[n]}\n" for n in names)
        blocks.append(f"-- name: fn_{i:03d}\n{params}{sql};\n")
    (folder / "queries").mkdir(parents=True)
    (folder / "queries" / "bench.sql").write_text("\n".join(blocks))


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = start_embedded(Path(tmp) / "pg")
        try:
            with psycopg.connect(url) as conn:
                load_sample(conn, customers=2000)
            async with await psycopg.AsyncConnection.connect(url) as conn:
                schema = await load_schema(conn)
                lines = len(ANALYTICAL.strip().splitlines())
                times = []
                for _ in range(30):
                    start = time.perf_counter()
                    analyze(ANALYTICAL, schema)
                    times.append((time.perf_counter() - start) * 1000)
                print(f"analytical query ({lines} lines, 5 CTEs, 6 joins + a view): "
                      f"median {statistics.median(times):.1f} ms, max {max(times):.1f} ms "
                      f"over {len(times)} runs")
                write_catalog(Path(tmp) / "project", 500)
                start = time.perf_counter()
                catalog = load_catalog(Path(tmp) / "project" / "queries")
                parsed = time.perf_counter() - start
                analysis = await analyse_catalog(conn, catalog, Classification(),
                                                 Path(tmp) / "project")
                total = time.perf_counter() - start
                bad = [n for n, p in analysis.problems.items() if p]
                print(f"500-function catalog: parsed in {parsed:.2f} s, parsed + analysed + "
                      f"described against the live schema in {total:.2f} s "
                      f"({len(analysis.functions)} analysed, {len(bad)} with problems)")
        finally:
            stop_embedded(Path(tmp) / "pg")


if __name__ == "__main__":
    arguments(__doc__, __spec__).parse_args()
    sys.exit(asyncio.run(main()))
