"""The starter project ``querygate init`` writes."""

from __future__ import annotations

from pathlib import Path

CONFIG = """\
# querygate project: the catalog of functions and the policies over them.
database:
  url: $env:QUERYGATE_DATABASE_URL     # the gateway's own role; the only production credential
audit:
  url: null                            # default: the same database, schema querygate
secret_key: $env:QUERYGATE_SECRET_KEY  # keys mask.hash and the HMACs of sensitive parameters
settings:
  statement_timeout_ms: 5000
  max_rows: 10000
classification:
  public.customers:
    subject: customer                  # each row is a data subject; the primary key is its id
    columns:
      email: [pii.contact]
roles:
  support:
    functions: [get_customer_by_id]
    fields:
      pii.contact: mask.email
"""

QUERIES = """\
-- name: get_customer_by_id
-- Fetch one customer.
-- param customer_id: int
SELECT id, email FROM customers WHERE id = :customer_id;
"""


def write_starter(directory: Path) -> list[Path]:
    """Write the starter files; nothing when a project is already there."""
    config = directory / "querygate.yaml"
    if config.exists():
        return []
    (directory / "queries").mkdir(parents=True, exist_ok=True)
    queries = directory / "queries" / "customers.sql"
    config.write_text(CONFIG, encoding="utf-8")
    queries.write_text(QUERIES, encoding="utf-8")
    return [config, queries]
