"""Function analysis: each function's lineage, read against the live schema and classification.

This is where the catalog, the lineage engine and the classification meet:
it says, for every output column, which base columns it comes from, which
tags it carries, and whether its values identify a data subject. It also
keeps PostgreSQL's own map of column origins for the runtime second guard.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from querygate.catalog import Catalog, Function
from querygate.execute import Result, describe
from querygate.lineage import Analysis, LineageError, Schema, analyze, load_schema
from querygate.lockfile import new_columns, read_lock
from querygate.policy import Classification, ColumnSpec, classify_columns


@dataclass(frozen=True)
class AnalysedFunction:
    function: Function
    columns: tuple[ColumnSpec, ...]
    filters: Mapping[str, tuple[str, ...]]  # base column -> tags, every column a predicate reads
    sensitive_params: frozenset[str]  # compared with a tagged column: HMAC in the audit log
    subject_params: Mapping[str, str]  # parameter -> subject type it selects by equality
    problems: tuple[str, ...] = field(default=())  # must be fixed: `check` fails
    notes: tuple[str, ...] = field(default=())  # for a reviewer's eye (lineage notes)

    @property
    def name(self) -> str:
        return self.function.name


_ORIGINS = """
SELECT a.attrelid::bigint, a.attnum, n.nspname || '.' || c.relname || '.' || a.attname,
       c.relkind IN ('r', 'p')
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
"""


class Origins:
    """PostgreSQL's map of (table oid, attribute number) to ``schema.table.column``."""

    def __init__(self, rows: Sequence[tuple[int, int, str, bool]]) -> None:
        self._columns = {(oid, att): (source, base) for oid, att, source, base in rows}
        self._tables: dict[int, set[str]] = {}
        for oid, _, source, base in rows:
            if base:
                self._tables.setdefault(oid, set()).add(source)

    @classmethod
    async def load(cls, conn: psycopg.AsyncConnection[Any]) -> Origins:
        return cls(await (await conn.execute(_ORIGINS)).fetchall())

    def disagreement(self, columns: Sequence[ColumnSpec], result: Result) -> str | None:
        """Why the result's reported origins contradict the analysis, or None."""
        if len(result.columns) != len(columns):
            return f"{len(result.columns)} result columns, {len(columns)} analysed"
        for i, (oid, att) in enumerate(result.origins):
            if oid == 0:
                continue
            if att == 0:  # a whole row: every column of the table must be a source
                missing = self._tables.get(oid, set()) - columns[i].sources
                if missing:
                    return f"column {i + 1} is a whole row holding {sorted(missing)[0]}, " \
                           "which lineage did not predict"
                continue
            known = self._columns.get((oid, att))
            if known is None:
                return f"column {i + 1} comes from a relation unknown at start (oid {oid})"
            source, base = known
            if base and source not in columns[i].sources:
                return f"column {i + 1} comes from {source}, which lineage did not predict"
        return None


@dataclass(frozen=True)
class CatalogAnalysis:
    functions: dict[str, AnalysedFunction]
    problems: dict[str, list[str]]
    schema: Schema
    classification: Classification  # with the columns added since querygate.lock
    origins: Origins
    locked: bool


def subject_columns(schema: Schema, classification: Classification) -> dict[str, str]:
    """Base column -> subject type, for subject tables' keys and subject references."""
    found: dict[str, str] = {}
    for table, entry in classification.tables.items():
        relation = schema.relations.get(table)
        if entry.subject and relation is not None and len(relation.primary_key) == 1:
            found[f"{table}.{relation.primary_key[0]}"] = entry.subject
        for subject, column in entry.subject_refs.items():
            found[f"{table}.{column}"] = subject
    return found


def analysed_function(function: Function, analysis: Analysis, names: Sequence[str],
                      schema: Schema, classification: Classification) -> AnalysedFunction:
    """Column specs, filters and parameter roles of one analysed query."""
    keys = subject_columns(schema, classification)
    subjects = [
        keys.get(next(iter(c.sources))) if c.direct and len(c.sources) == 1 else None
        for c in analysis.columns
    ]
    columns = classify_columns(names, [c.sources for c in analysis.columns], subjects,
                               classification)
    filters = {s: classification.tags_of(s) for s in sorted(analysis.filters)}
    sensitive = frozenset(
        p.lstrip(":") for p, cols in analysis.parameters.items()
        if any(classification.tags_of(c) for c in cols)
    )
    subject_params = {
        p.lstrip(":"): keys[c]
        for p, cols in analysis.equalities.items() for c in sorted(cols) if c in keys
    }
    read = sorted({s for c in columns for s in c.sources} | set(filters))
    problems = tuple(f"reads {s}, which is not in querygate.lock: classify it, then run "
                     "`querygate check --lock`" for s in read if s in classification.unclassified)
    return AnalysedFunction(function, columns, filters, sensitive, subject_params, problems,
                            analysis.problems)


async def analyse_catalog(conn: psycopg.AsyncConnection[Any], catalog: Catalog,
                          classification: Classification, root: Path) -> CatalogAnalysis:
    """Analyse every function against the live database."""
    schema = await load_schema(conn)
    lock = read_lock(root)
    classification = dataclasses.replace(classification,
                                         unclassified=new_columns(schema, lock))
    analysed: dict[str, AnalysedFunction] = {}
    problems: dict[str, list[str]] = {}
    for name, function in catalog.items():
        try:
            analysis = analyze(function.sql, schema)
            names = await describe(conn, function.exec_sql, [p.name for p in function.parameters])
        except LineageError as exc:
            problems[name] = [f"cannot be analysed: {exc}"]
            continue
        except psycopg.Error as exc:
            first = str(exc).splitlines()[0] if str(exc) else ""
            problems[name] = [f"PostgreSQL cannot prepare it (SQLSTATE {exc.sqlstate}): {first}"]
            continue
        if len(names) != len(analysis.columns):
            problems[name] = [f"lineage found {len(analysis.columns)} output columns, "
                              f"PostgreSQL reports {len(names)}"]
            continue
        analysed[name] = analysed_function(function, analysis, names, schema, classification)
        problems[name] = list(analysed[name].problems)
    return CatalogAnalysis(analysed, problems, schema, classification,
                           await Origins.load(conn), lock is not None)
