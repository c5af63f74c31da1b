"""The lineage fixture corpus as a real project: its schema created in PostgreSQL, canary rows
in every table, every column tagged, every case a function."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg

from querygate.catalog import placeholders
from tests.lineage.conftest import FUNCTIONS, RELATIONS
from tests.lineage.lineage_cases import Case, load_cases

TAG = "pii.canary"
_FUNCTION_DDL = {
    "public.customer_ssn": "(bigint) RETURNS text LANGUAGE sql",
    "public.opaque": "() RETURNS integer LANGUAGE plpgsql",
    "public.masked_ssn": "(bigint) RETURNS text LANGUAGE sql",
    "public.loop_a": "(bigint) RETURNS bigint LANGUAGE sql",
    "public.loop_b": "(bigint) RETURNS bigint LANGUAGE sql",
}


def usable_cases() -> list[Case]:
    """Cases a project can hold: no positional ``$n`` parameters."""
    return [c for c in load_cases() if not re.search(r"\$[0-9]", c.sql)]


def canary(table: str, column: str, row: int) -> str:
    return f"CANARY-{table}-{column}-{row}"


def _value(table: str, column: str, kind: str, row: int) -> object:
    if kind in ("bigint", "numeric"):
        return row
    if kind == "date":
        return f"190{row}-0{row}-0{row}"
    if kind.startswith("timestamp"):
        return f"190{row}-0{row}-0{row} 01:02:03+00"
    return canary(table, column, row)


def create_schema(url: str) -> list[str]:
    """Create the corpus schema with three canary rows per table; return the canary strings."""
    canaries: list[str] = []
    with psycopg.connect(url) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS hr")
        for rel in RELATIONS:
            if rel.view_sql is not None:
                conn.execute(f"CREATE VIEW {rel.qualified} AS {rel.view_sql}".encode())
                continue
            cols = ", ".join(f"{c.name} {c.type}" for c in rel.columns)
            conn.execute(f"CREATE TABLE {rel.qualified} ({cols}, PRIMARY KEY (id))".encode())
            for row in (1, 2, 3):
                values = [_value(rel.name, c.name, c.type, row) for c in rel.columns]
                canaries += [v for v in values if isinstance(v, str) and v.startswith("CANARY")]
                marks = ", ".join(["%s"] * len(values))
                conn.execute(f"INSERT INTO {rel.qualified} VALUES ({marks})".encode(), values)
        conn.execute("SET check_function_bodies = off")
        for name, body in FUNCTIONS.items():
            conn.execute(f"CREATE FUNCTION {name}{_FUNCTION_DDL[name]} AS $fn${body}$fn$".encode())
    return canaries


def write_project(folder: Path, url: str, secret_file: Path, *, adhoc: bool = False) -> Path:
    """A project tagging every base column with one tag; each usable case a function
    (with ``adhoc``: one trivial function, for ad-hoc SQL only)."""
    classification = "\n".join(
        f"  {rel.qualified}:\n    columns:\n"
        + "\n".join(f"      {c.name}: [{TAG}]" for c in rel.columns)
        for rel in RELATIONS if rel.view_sql is None
    )
    config = (f"database:\n  url: '{url}'\nsecret_key: $file:{secret_file}\n"
              f"classification:\n{classification}\n"
              f"roles:\n  probe:\n    functions: ['*']\n    adhoc: {str(adhoc).lower()}\n"
              f"    fields:\n      {TAG}: match\n")
    (folder / "queries").mkdir(parents=True, exist_ok=True)
    (folder / "querygate.yaml").write_text(config)
    blocks = ["-- name: ping\nSELECT 1 AS one\n"] if adhoc else []
    for case in ([] if adhoc else usable_cases()):
        if case.error:
            continue
        names = sorted({name for _, _, name in placeholders(case.sql)})
        params = "".join(f"-- param {n}: text\n" for n in names)
        blocks.append(f"-- name: {case.name}\n{params}{case.sql.strip()}\n")
    (folder / "queries" / "corpus.sql").write_text("\n".join(blocks))
    return folder


def as_adhoc(case: Case) -> str:
    """The case as one parameterless statement: each ``:name`` becomes the literal '1'."""
    sql, shift = case.sql, 0
    for start, end, _ in placeholders(case.sql):
        sql = sql[: start + shift] + "'1'" + sql[end + shift:]
        shift += 3 - (end - start)
    return sql
