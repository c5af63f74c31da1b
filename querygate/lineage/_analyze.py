"""``analyze``: from SQL text to the base columns behind every output, filter and parameter."""

from __future__ import annotations

from collections.abc import Iterator
from types import MappingProxyType

from sqlglot import exp
from sqlglot.optimizer.scope import walk_in_scope

from querygate.errors import LineageError
from querygate.lineage._clauses import equality_target, parameter_key, predicate_of
from querygate.lineage._model import Analysis, OutputColumn, Schema
from querygate.lineage._parse import ensure_expanded, parse_query
from querygate.lineage._session import Session, columns_of
from querygate.lineage._trace import Tracer
from querygate.lineage._values import Value

# Functions with effects beyond reading: allowed, but worth a reviewer's eye.
_NOTABLE_FUNCTIONS = frozenset(
    {
        "pg_sleep",
        "set_config",
        "dblink",
        "dblink_exec",
        "lo_import",
        "lo_export",
        "pg_read_file",
        "pg_read_binary_file",
        "pg_ls_dir",
        "pg_terminate_backend",
        "pg_cancel_backend",
        "pg_advisory_lock",
        "pg_notify",
        "nextval",
        "setval",
    }
)


def analyze(sql: str, schema: Schema, parsed: exp.Expr | None = None) -> Analysis:
    """Trace every output column, filter and parameter of one read-only query to base columns.

    ``parsed``: ``parse_query(sql)`` when the caller has it already (it is changed in place).
    Raises LineageError when the SQL does not parse, is not a single read-only query, or
    names an unknown table or column.
    """
    try:
        return _analyze(sql, schema, parsed)
    except RecursionError:
        raise LineageError("query is nested too deeply to analyse") from None


def _analyze(sql: str, schema: Schema, parsed: exp.Expr | None) -> Analysis:
    statement = parse_query(sql) if parsed is None else parsed
    notes = list(_notable_calls(statement))
    tracer = Session(schema).tracer(statement, sql)
    ensure_expanded(tracer.root.expression)
    outputs = tracer.outputs(tracer.root).columns
    filters = tracer.all_filters()
    parameters, equalities = _parameters(tracer)
    tables = tracer.read_tables()
    everything = columns_of(schema, tables)
    columns = tuple(_output(name, value, everything) for name, value in outputs)
    notes.extend(tracer.problems)
    notes.extend(_untraced_notes(columns, filters))
    return Analysis(
        columns=columns,
        filters=_sources(filters, everything),
        tables=tables,
        parameters=MappingProxyType({k: _sources(v, everything) for k, v in parameters.items()}),
        equalities=MappingProxyType(equalities),
        problems=tuple(dict.fromkeys(notes)),
    )


def _output(name: str, value: Value, everything: frozenset[str]) -> OutputColumn:
    if value.traced:
        return OutputColumn(name, value.sources, value.direct)
    return OutputColumn(name, value.sources | everything, direct=False, traced=False)


def _sources(value: Value, everything: frozenset[str]) -> frozenset[str]:
    return value.sources if value.traced else value.sources | everything


def _parameters(tracer: Tracer) -> tuple[dict[str, Value], dict[str, frozenset[str]]]:
    """Per parameter: the columns of its predicate, and the columns it must equal."""
    parameters: dict[str, Value] = {}
    equalities: dict[str, frozenset[str]] = {}
    for scope in tracer.scopes:
        for node in walk_in_scope(scope.expression):
            if not isinstance(node, exp.Placeholder | exp.Parameter):
                continue
            key = parameter_key(node)
            found = tracer.value(predicate_of(node), scope)
            parameters[key] = Value.combine([parameters.get(key, Value()), found])
            target = equality_target(node)
            if target is None:
                continue
            equal = tracer.value(target, scope)
            if equal.direct and equal.traced and len(equal.sources) == 1:
                equalities[key] = equalities.get(key, frozenset()) | equal.sources
    return parameters, equalities


def _notable_calls(statement: exp.Expr) -> Iterator[str]:
    for call in statement.find_all(exp.Func):
        name = str(call.this) if isinstance(call, exp.Anonymous) else call.sql_name()
        if name.lower() in _NOTABLE_FUNCTIONS:
            yield f"calls {name.lower()}(), which does more than read"


def _untraced_notes(columns: tuple[OutputColumn, ...], filters: Value) -> Iterator[str]:
    for position, column in enumerate(columns, start=1):
        if not column.traced:
            yield (
                f"output column {position} ({column.name}) could not be traced: "
                "it counts as every column the query reads"
            )
    if not filters.traced:
        yield "a filter could not be traced: every column the query reads counts as filtered"
