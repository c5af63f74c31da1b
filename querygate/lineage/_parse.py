"""From SQL text to one qualified, read-only sqlglot query, or a LineageError."""

from __future__ import annotations

import logging
from collections.abc import Callable

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError
from sqlglot.optimizer.qualify import qualify
from sqlglot.schema import MappingSchema

from querygate.errors import LineageError
from querygate.lineage._model import Relation, Schema
from querygate.lineage._names import output_name

DIALECT = "postgres"


class _NoStatementText(logging.Filter):
    """sqlglot's parser warnings quote the SQL they parse, which may be a caller's statement
    with its literals: they never reach querygate's logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


logging.getLogger("sqlglot").addFilter(_NoStatementText())

_QUERIES = (exp.Select, exp.SetOperation, exp.Subquery, exp.Values)
_WRITES = (
    exp.DML,
    exp.DDL,
    exp.Command,
    exp.Into,
    exp.Lock,
    exp.Set,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
)


def parse_query(sql: str) -> exp.Expr:
    """Parse exactly one read-only query (SELECT, WITH, VALUES or a set operation)."""
    try:
        statements = [s for s in sqlglot.parse(sql, dialect=DIALECT) if s is not None]
    except ParseError as error:
        raise LineageError(f"SQL does not parse: {_parse_message(error)}") from None
    except (SqlglotError, RecursionError) as error:
        raise LineageError(f"SQL does not parse: {_failure(error)}") from None
    if not statements:
        raise LineageError("SQL is empty: expected one SELECT query")
    if len(statements) > 1:
        raise LineageError(f"expected one statement, found {len(statements)}")
    statement = statements[0]
    _ensure_read_only(statement)
    return statement


def _failure(error: Exception) -> str:
    return "nested too deeply" if isinstance(error, RecursionError) else type(error).__name__


def _parse_message(error: ParseError) -> str:
    if not error.errors:
        return "syntax error"
    first = error.errors[0]
    return f"{first.get('description')} (line {first.get('line')}, column {first.get('col')})"


def _ensure_read_only(statement: exp.Expr) -> None:
    if not isinstance(statement, _QUERIES):
        kind = _kind(statement)
        raise LineageError(f"only read-only SELECT queries are allowed, not {kind}")
    for node in statement.walk():
        if isinstance(node, exp.Lock):
            raise LineageError("locking clauses (FOR UPDATE/SHARE) are not allowed")
        if isinstance(node, exp.Into):
            raise LineageError("SELECT INTO is not allowed")
        if isinstance(node, _WRITES):
            kind = _kind(node)
            raise LineageError(f"only read-only queries are allowed: found {kind}")


def _kind(statement: exp.Expr) -> str:
    if isinstance(statement, exp.Command):
        return str(statement.this).upper()
    return type(statement).__name__.upper()


def qualify_query(
    statement: exp.Expr, schema: Schema, mapping: MappingSchema, sql: str = ""
) -> exp.Expr:
    """Name every output, resolve tables along the search path and qualify every column.

    ``sql`` is the text ``statement`` was parsed from: output names are read from it.
    """
    statement = _wrap_values(statement)
    _expand_row_stars(statement)
    _name_outputs(statement, sql)
    try:
        return qualify(
            statement,
            dialect=DIALECT,
            schema=mapping,
            on_qualify=_table_resolver(schema),
            validate_qualify_columns=True,
            quote_identifiers=False,
        )
    except (SqlglotError, RecursionError) as error:
        message = str(error)
        if "olumn" in message:
            raise LineageError(f"unknown or ambiguous column: {message}") from None
        raise LineageError(f"cannot analyse query: {message}") from None


def build_mapping(schema: Schema) -> MappingSchema:
    """The sqlglot view of ``schema``: ``{schema: {table: {column: type}}}``."""
    tables: dict[str, dict[str, dict[str, str]]] = {}
    for relation in schema.relations.values():
        columns = {c.name: c.type for c in relation.columns}
        tables.setdefault(relation.schema, {})[relation.name] = columns
    nested: dict[str, object] = dict(tables)
    return MappingSchema(nested, dialect=DIALECT, normalize=False)


def table_relation(table: exp.Table, schema: Schema) -> Relation:
    """The relation a qualified table node names, or a LineageError."""
    found = schema.find(table.name, table.db or None)
    if found is None:
        where = f"{table.db}.{table.name}" if table.db else table.name
        raise LineageError(f"unknown table: {where}")
    return found


def function_key(call: exp.Anonymous, schema: Schema) -> str | None:
    """The ``schema.fname`` of a user function a call names (``f(x)`` or ``s.f(x)``), if any."""
    parent = call.parent
    qualifier = parent.this.name if isinstance(parent, exp.Dot) and parent.this else None
    return schema.find_function(str(call.this).lower(), qualifier or None)


def _table_resolver(schema: Schema) -> Callable[[exp.Table], None]:
    def resolve(table: exp.Table) -> None:
        if not isinstance(table.this, exp.Identifier):
            return
        if table.catalog:
            raise LineageError(f"cross-database reference: {table.sql(dialect=DIALECT)}")
        relation = table_relation(table, schema)
        table.set("db", exp.to_identifier(relation.schema, quoted=True))

    return resolve


def _wrap_values(statement: exp.Expr) -> exp.Expr:
    """``VALUES ...`` becomes ``SELECT * FROM (VALUES ...) AS "*VALUES*"(column1, ...)``."""
    if not isinstance(statement, exp.Values) or not statement.expressions:
        return statement
    width = len(statement.expressions[0].expressions)
    names = [exp.to_identifier(f"column{i + 1}") for i in range(width)]
    alias = exp.TableAlias(this=exp.to_identifier("*VALUES*", quoted=True), columns=names)
    statement.set("alias", alias)
    return exp.select("*").from_(statement)


def _name_outputs(statement: exp.Expr, sql: str) -> None:
    """Alias unnamed expressions as PostgreSQL names them, so outer queries can refer to them."""
    for select in list(statement.find_all(exp.Select)):
        for projection in list(select.expressions):
            if isinstance(projection, exp.Alias | exp.Column | exp.Star) or _is_star(projection):
                continue
            name = output_name(projection, sql)
            alias = exp.Alias(alias=exp.to_identifier(name, quoted=True))
            projection.replace(alias)
            alias.set("this", projection)


def _expand_row_stars(statement: exp.Expr) -> None:
    """``(c).*`` on a table alias is ``c.*``, which qualify expands."""
    for dot in list(statement.find_all(exp.Dot)):
        row = dot.this.unnest() if isinstance(dot.this, exp.Paren) else dot.this
        if isinstance(dot.expression, exp.Star) and type(row) is exp.Column and not row.table:
            dot.replace(exp.Column(this=exp.Star(), table=row.this.copy()))


def _is_star(node: exp.Expr) -> bool:
    """``*``, ``t.*`` or ``(expr).*``."""
    if isinstance(node, exp.Star):
        return True
    if isinstance(node, exp.Column) and isinstance(node.this, exp.Star):
        return True
    return isinstance(node, exp.Dot) and isinstance(node.expression, exp.Star)


def ensure_expanded(query: exp.Expr) -> None:
    """Every result column must be known: a ``*`` left unexpanded would shift positions."""
    if isinstance(query, exp.Subquery):
        ensure_expanded(query.unnest())
    elif isinstance(query, exp.SetOperation):
        ensure_expanded(query.this)
        ensure_expanded(query.expression)
    elif isinstance(query, exp.Select):
        for projection in query.expressions:
            if _is_star(projection):
                text = projection.sql(dialect=DIALECT)
                raise LineageError(f"cannot expand {text}: the columns it stands for are unknown")
