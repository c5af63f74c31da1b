"""Which parts of a query decide the rows (filters) and what each parameter touches."""

from __future__ import annotations

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, find_all_in_scope

# A parameter's "predicate" is the nearest comparison above it; these nodes end the search.
_BOUNDARIES = (
    exp.Connector,
    exp.Not,
    exp.Where,
    exp.Having,
    exp.Join,
    exp.Query,
    exp.Order,
    exp.Ordered,
    exp.Group,
    exp.Limit,
    exp.Offset,
    exp.From,
    exp.Distinct,
    exp.CTE,
    exp.Values,
    exp.Alias,
    exp.Lateral,
    exp.Unnest,
    exp.Table,
)
# Wrappers a parameter may sit in and still be "the value compared": `= ANY(:ids::bigint[])`.
_VALUE_WRAPPERS = (exp.Cast, exp.TryCast, exp.Paren, exp.Any)
_EQUALITIES = (exp.EQ, exp.NullSafeEQ)


def filter_expressions(scope: Scope) -> list[exp.Expr]:
    """WHERE, JOIN ON, GROUP BY, HAVING, ORDER BY, DISTINCT ON and window specs of one scope."""
    node = scope.expression
    found: list[exp.Expr] = []
    if isinstance(node, exp.Select):
        found.extend(_args(node, "where", "group", "having", "windows"))
        distinct = node.args.get("distinct")
        if isinstance(distinct, exp.Distinct):
            found.extend(_args(distinct, "on"))
    found.extend(_args(node, "order"))
    for join in find_all_in_scope(node, exp.Join):
        found.extend(_args(join, "on", "using"))
    for window in find_all_in_scope(node, exp.Window):
        found.extend(_args(window, "partition_by", "order"))
    for aggregate_filter in find_all_in_scope(node, exp.Filter):
        found.extend(_args(aggregate_filter, "expression"))
    return found


def _args(node: exp.Expr, *keys: str) -> list[exp.Expr]:
    found: list[exp.Expr] = []
    for key in keys:
        value = node.args.get(key)
        if isinstance(value, list):
            found.extend(v for v in value if isinstance(v, exp.Expr))
        elif isinstance(value, exp.Expr):
            found.append(value)
    return found


def parameter_key(node: exp.Placeholder | exp.Parameter) -> str:
    """``:name`` for named placeholders, ``$1`` for positional ones, ``?`` when anonymous."""
    if isinstance(node, exp.Parameter):
        return f"${node.name}"
    return f":{node.name}" if node.name else "?"


def predicate_of(parameter: exp.Expr) -> exp.Expr:
    """The comparison (or, failing that, the whole expression) a parameter is part of."""
    current = parameter
    while current.parent is not None:
        parent = current.parent
        if isinstance(parent, exp.Predicate) and not isinstance(parent, exp.SubqueryPredicate):
            return parent
        if isinstance(parent, _BOUNDARIES):
            return current
        current = parent
    return current


def equality_target(parameter: exp.Expr) -> exp.Column | None:
    """The column a parameter is tested for plain equality with (``col = :p``, ``col IN (:p)``)."""
    current = parameter
    while isinstance(current.parent, _VALUE_WRAPPERS):
        current = current.parent
    parent = current.parent
    if isinstance(parent, _EQUALITIES):
        other = parent.expression if current is parent.this else parent.this
    elif isinstance(parent, exp.In) and current is not parent.this:
        other = parent.this
    else:
        return None
    if other is None or _negated(parent):
        return None
    while isinstance(other, exp.Paren | exp.Cast):
        other = other.this
    return other if type(other) is exp.Column else None


def _negated(node: exp.Expr) -> bool:
    current: exp.Expr | None = node
    while current is not None and not isinstance(current, exp.Query):
        if isinstance(current, exp.Not):
            return True
        current = current.parent
    return False
