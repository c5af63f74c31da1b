"""One analysis: the schema, and each view and user function analysed at most once."""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.optimizer.scope import build_scope

from querygate.errors import LineageError
from querygate.lineage._model import Relation, Schema
from querygate.lineage._parse import (
    DIALECT,
    build_mapping,
    function_key,
    parse_query,
    qualify_query,
)
from querygate.lineage._trace import Tracer
from querygate.lineage._values import UNTRACED, Environment, Outputs, Summary, Value


class Session:
    """Traces queries against one schema, expanding views and user functions on demand."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.env = Environment(schema, self.view, self.function)
        self._mapping = build_mapping(schema)
        self._views: dict[str, Summary] = {}
        self._functions: dict[str, Summary] = {}
        self._busy: set[str] = set()

    def tracer(self, statement: exp.Expr, sql: str = "") -> Tracer:
        """Qualify a parsed query (parsed from ``sql``) against the schema and scope it."""
        qualified = qualify_query(statement, self.schema, self._mapping, sql)
        root = build_scope(qualified)
        if root is None:
            raise LineageError("not a query")
        return Tracer(root, self.env)

    def view(self, relation: Relation) -> Summary:
        """A view's outputs (named as the view's columns), filters and base tables."""
        key = relation.qualified
        if key not in self._views:
            if key in self._busy:
                raise LineageError(f"view {key} refers to itself")
            self._busy.add(key)
            try:
                self._views[key] = self._summarize_view(relation)
            except LineageError as error:
                raise LineageError(f"view {key} cannot be analysed: {error.message}") from None
            finally:
                self._busy.discard(key)
        return self._views[key]

    def _summarize_view(self, relation: Relation) -> Summary:
        sql = relation.view_sql or ""
        tracer = self.tracer(parse_query(sql), sql)
        found = tracer.outputs(tracer.root).columns
        columns = []
        for i, column in enumerate(relation.columns):
            value = found[i][1] if i < len(found) else UNTRACED
            columns.append((column.name, value))
        filters = tracer.all_filters()
        tables = tracer.read_tables()
        problems = tuple(f"view {relation.qualified}: {p}" for p in tracer.problems)
        return Summary(Outputs(tuple(columns)), filters, tables, problems)

    def function(self, key: str) -> Summary:
        """A user function: it may read any column of the tables its body reads."""
        if key not in self._functions:
            self._busy.add(f"function {key}")
            try:
                self._functions[key] = self._summarize_function(key)
            finally:
                self._busy.discard(f"function {key}")
        return self._functions[key]

    def _summarize_function(self, key: str) -> Summary:
        tables = self._function_tables(self.schema.sql_functions[key])
        if tables is None:
            everything = _base_tables(self.schema)
            value = Value(columns_of(self.schema, everything), traced=False)
            problem = f"function {key} cannot be analysed: it may read any table"
            return Summary(Outputs((), value), Value(), everything, (problem,))
        value = Value(columns_of(self.schema, tables))
        listed = ", ".join(sorted(tables)) or "no table"
        problem = f"function {key} reads {listed}: every column of those counts as a source"
        return Summary(Outputs((), value), Value(), tables, (problem,))

    def _function_tables(self, body: str) -> frozenset[str] | None:
        """The base tables a function body reads, or None when the body is not plain SQL."""
        try:
            statements = [s for s in sqlglot.parse(body, dialect=DIALECT) if s is not None]
        except (SqlglotError, RecursionError):
            return None
        if not statements or not all(isinstance(s, exp.Query) for s in statements):
            return None
        tables: set[str] = set()
        for statement in (normalize_identifiers(s, dialect=DIALECT) for s in statements):
            found = self._statement_tables(statement)
            if found is None:
                return None
            tables |= found
        return frozenset(tables)

    def _statement_tables(self, statement: exp.Expr) -> frozenset[str] | None:
        """Tables a function body statement reads, directly, through views or other functions."""
        tables: set[str] = set()
        ctes = {cte.alias_or_name for cte in statement.find_all(exp.CTE)}
        for table in statement.find_all(exp.Table):
            if not isinstance(table.this, exp.Identifier) or (not table.db and table.name in ctes):
                continue
            relation = self.schema.find(table.name, table.db or None)
            if relation is None:
                return None
            tables |= self.view(relation).tables if relation.is_view else {relation.qualified}
        for call in statement.find_all(exp.Anonymous):
            key = function_key(call, self.schema)
            if key is None:
                continue
            if f"function {key}" in self._busy or not self.function(key).outputs.whole().traced:
                return None  # recursion, or a callee that cannot be analysed
            tables |= self.function(key).tables
        return frozenset(tables)


def _base_tables(schema: Schema) -> frozenset[str]:
    return frozenset(k for k, r in schema.relations.items() if not r.is_view)


def columns_of(schema: Schema, tables: frozenset[str]) -> frozenset[str]:
    """Every column of ``tables`` (keys ``schema.name``) as sources."""
    sources: set[str] = set()
    for key in tables:
        sources |= schema.relations[key].column_sources()
    return frozenset(sources)
