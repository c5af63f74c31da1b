"""Function analysis: each function's lineage, read against the live schema and classification.

This is where the catalog, the lineage engine and the classification meet:
it says, for every output column, which base columns it comes from, which
tags it carries, and whether its values identify a data subject.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from querygate.catalog import Catalog, Function
from querygate.execute import describe
from querygate.lineage import Analysis, LineageError, Schema, analyze, load_schema
from querygate.policy import Classification, ColumnSpec, classify_columns


@dataclass(frozen=True)
class AnalysedFunction:
    function: Function
    columns: tuple[ColumnSpec, ...]
    filters: Mapping[str, tuple[str, ...]]  # base column -> tags, every column a predicate reads
    sensitive_params: frozenset[str]  # compared with a tagged column: HMAC in the audit log
    subject_params: Mapping[str, str]  # parameter -> subject type it selects by equality
    problems: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.function.name


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


def _analysed(function: Function, analysis: Analysis, names: list[str], schema: Schema,
              classification: Classification) -> AnalysedFunction:
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
    return AnalysedFunction(function, columns, filters, sensitive, subject_params,
                            analysis.problems)


async def analyse_catalog(conn: psycopg.AsyncConnection[Any], catalog: Catalog,
                          classification: Classification) -> tuple[
                              dict[str, AnalysedFunction], dict[str, list[str]]]:
    """Analyse every function against the live database: (analysed, problems by function)."""
    schema = await load_schema(conn)
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
            problems[name] = [f"PostgreSQL cannot prepare it (SQLSTATE {exc.sqlstate}): "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}"]
            continue
        if len(names) != len(analysis.columns):
            problems[name] = [f"lineage found {len(analysis.columns)} output columns, "
                              f"PostgreSQL reports {len(names)}"]
            continue
        analysed[name] = _analysed(function, analysis, names, schema, classification)
        problems[name] = list(analysed[name].problems)
    return analysed, problems
