"""Filters on names in a catalog statement's WHERE (``LIKE``, ``~``, ``=``, ``<>``, ``IN``),
applied to the records querygate builds; anything else in the WHERE is ignored."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlglot import exp

from querygate.pgwire._view import Record


def passes(record: Record, tree: exp.Expression, params: Sequence[object]) -> bool:
    for where in tree.find_all(exp.Where):
        for node in where.find_all(exp.Like, exp.ILike, exp.RegexpLike, exp.EQ, exp.NEQ,
                                   exp.In, exp.Operator):
            if node.find_ancestor(exp.Or) is not None or node.find_ancestor(exp.Join):
                continue
            verdict = _test(record, node, params) if isinstance(node, exp.Expression) else None
            if verdict is None:
                continue
            negated = isinstance(node.parent, exp.Not)
            if verdict == negated:
                return False
    return True


def _literal(node: exp.Expression | None, params: Sequence[object]) -> str | None:
    while isinstance(node, exp.Collate | exp.Cast | exp.Paren):
        node = node.this
    if isinstance(node, exp.Literal) and node.is_string:
        return str(node.this)
    if isinstance(node, exp.Placeholder | exp.Parameter):
        index = str(node.name or node.this)
        if index.isdigit() and 0 < int(index) <= len(params):
            value = params[int(index) - 1]
            return None if value is None else str(value)
    return None


def _test(record: Record, node: exp.Expression, params: Sequence[object]) -> bool | None:
    column = node.this
    if not isinstance(column, exp.Column) or column.name.lower() not in record:
        return None
    value = str(record[column.name.lower()])
    if isinstance(node, exp.In):
        options = [_literal(e, params) for e in node.expressions]
        if any(o is None for o in options):
            return None
        return value in options
    pattern = _literal(node.expression, params)
    if pattern is None:
        return None
    if isinstance(node, exp.Like | exp.ILike):
        regex = like_regex(pattern)
        flags = re.IGNORECASE if isinstance(node, exp.ILike) else 0
        return re.fullmatch(regex, value, flags) is not None
    if isinstance(node, exp.EQ):
        return value == pattern
    if isinstance(node, exp.NEQ):
        return value != pattern
    operator = node.args.get("operator") if isinstance(node, exp.Operator) else "~"
    if isinstance(node, exp.Operator) and "~" not in str(operator):
        return None
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return None


def like_regex(pattern: str) -> str:
    """A LIKE pattern as a regular expression (``%``, ``_``, backslash escapes)."""
    out, escaped = [], False
    for char in pattern:
        if escaped:
            out.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            out.append(".*")
        elif char == "_":
            out.append(".")
        else:
            out.append(re.escape(char))
    return "".join(out)
