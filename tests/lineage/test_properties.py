"""Properties: whatever expression is built over protected columns, its lineage keeps them all."""

from __future__ import annotations

from dataclasses import dataclass
from string import Formatter

from hypothesis import given, settings
from hypothesis import strategies as st

from querygate.lineage import Schema, analyze

COLUMNS = ["id", "full_name", "email", "iban", "ssn", "date_of_birth", "country", "created_at"]


@dataclass(frozen=True)
class Expr:
    sql: str
    columns: frozenset[str]
    bare: bool = False  # a plain column reference


def _column(name: str, qualified: bool) -> Expr:
    text = f"c.{name}" if qualified else name
    return Expr(text, frozenset({f"public.customers.{name}"}), bare=True)


LEAVES = st.one_of(
    st.builds(_column, st.sampled_from(COLUMNS), st.booleans()),
    st.sampled_from([Expr("'x'", frozenset()), Expr("1", frozenset()), Expr("NULL", frozenset())]),
    st.sampled_from([Expr(":p", frozenset()), Expr("now()", frozenset())]),
)

TEMPLATES = [
    "upper({0}::text)",
    "lower(({0})::text)",
    "coalesce({0}, {1})",
    "concat({0}, {1}, {2})",
    "md5({0}::text)",
    "CAST({0} AS text)",
    "({0}::text || {1}::text)",
    "length({0}::text) + length({1}::text)",
    "CASE WHEN {0}::text LIKE 'x%' THEN {1} ELSE {2} END",
    "CASE {0} WHEN {1} THEN 'a' END",
    "nullif({0}, {1})",
    "greatest({0}::text, {1}::text)",
    "encode({0}::text::bytea, 'hex')",
    "exp(log(length({0}::text)))",
    "my_udf({0}, {1})",
    "to_jsonb({0})",
    "json_build_object('k', {0}, 'v', {1})",
    "substr({0}::text, 1, 2)",
    "({0} IS NULL)",
    "({0} IN ({1}, {2}))",
    "ARRAY[{0}, {1}]",
    "({0})",
    "(SELECT {0})",
    "EXISTS (SELECT 1 WHERE {0} IS NOT NULL)",
]


def _combine(template: str, parts: list[Expr]) -> Expr:
    used = {int(field) for _, field, _, _ in Formatter().parse(template) if field}
    columns = frozenset().union(*(parts[i].columns for i in used))
    bare = template == "({0})" and parts[0].bare  # parentheses copy the value unchanged
    return Expr(template.format(*(p.sql for p in parts)), columns, bare)


EXPRESSIONS = st.recursive(
    LEAVES,
    lambda inner: st.builds(
        _combine, st.sampled_from(TEMPLATES), st.lists(inner, min_size=3, max_size=3)
    ),
    max_leaves=12,
)

CONTEXTS = [
    "SELECT {e} AS v FROM customers c",
    "WITH x AS (SELECT {e} AS v FROM customers c) SELECT v FROM x",
    "SELECT t.v FROM (SELECT {e} AS v FROM customers c) t",
    "SELECT * FROM (SELECT {e} AS v FROM customers c) AS t(v)",
    "SELECT NULL AS v UNION ALL SELECT {e} FROM customers c",
    "SELECT l.v FROM customers c CROSS JOIN LATERAL (SELECT {e} AS v) l",
    "SELECT string_agg(({e})::text, ',') AS v FROM customers c",
    "SELECT max(({e})::text) OVER (PARTITION BY c.id) AS v FROM customers c",
    "SELECT (SELECT {e}) AS v FROM customers c",
]


@settings(max_examples=300, deadline=None)
@given(expr=EXPRESSIONS, context=st.sampled_from(CONTEXTS))
def test_output_sources_include_every_referenced_column(
    schema: Schema, expr: Expr, context: str
) -> None:
    result = analyze(context.format(e=expr.sql), schema)
    assert len(result.columns) == 1
    column = result.columns[0]
    assert column.traced
    assert expr.columns <= column.sources
    assert column.sources <= schema.relations["public.customers"].column_sources()
    if not expr.bare:
        assert not column.direct


@settings(max_examples=150, deadline=None)
@given(expr=EXPRESSIONS)
def test_filter_sources_include_every_referenced_column(schema: Schema, expr: Expr) -> None:
    sql = f"SELECT 1 FROM customers c WHERE ({expr.sql}) IS NOT NULL ORDER BY {expr.sql}"
    result = analyze(sql, schema)
    assert expr.columns <= result.filters


@settings(max_examples=100, deadline=None)
@given(expr=EXPRESSIONS)
def test_parameter_sees_columns_of_its_predicate(schema: Schema, expr: Expr) -> None:
    result = analyze(f"SELECT 1 FROM customers c WHERE {expr.sql} = :needle", schema)
    assert expr.columns <= result.parameters[":needle"]
