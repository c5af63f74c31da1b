"""PostgreSQL's name for an unaliased result column, best effort (its FigureColname)."""

from __future__ import annotations

import re

from sqlglot import exp

UNNAMED = "?column?"

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_CALL = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(\(?)")
_TYPE_NAMES = {
    "int": "int4",
    "integer": "int4",
    "bigint": "int8",
    "smallint": "int2",
    "boolean": "bool",
    "real": "float4",
    "double precision": "float8",
}
_KEYWORDS: dict[type[exp.Expr], str] = {
    exp.Case: "case",
    exp.Exists: "exists",
    exp.Array: "array",
    exp.Boolean: "bool",
}


def output_name(node: exp.Expr, sql: str = "") -> str:
    """The column name PostgreSQL gives ``node`` when it has no alias (``sql``: its source)."""
    if isinstance(node, exp.Alias):
        return node.alias
    if isinstance(node, exp.Column | exp.Dot):
        return node.name or UNNAMED
    if isinstance(node, exp.Paren | exp.Collate | exp.Window | exp.Filter):
        return output_name(node.this, sql)
    if isinstance(node, exp.Cast):
        inner = output_name(node.this, sql)
        return _type_name(node.to) if inner == UNNAMED else inner
    if isinstance(node, exp.Subquery) and isinstance(node.this, exp.Query):
        selects = node.this.selects
        return output_name(selects[0], sql) if selects else UNNAMED
    for kind, name in _KEYWORDS.items():
        if isinstance(node, kind):
            return name
    return _function_name(node, sql)


def _function_name(node: exp.Expr, sql: str) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower()
    if not isinstance(node, exp.Func):
        return UNNAMED
    start, end = node.meta.get("start"), node.meta.get("end")
    if isinstance(start, int) and isinstance(end, int) and _WORD.fullmatch(sql[start : end + 1]):
        return sql[start : end + 1].lower()
    text = node.sql(dialect="postgres")
    match = _CALL.match(text)
    if match is None or (match.group(2) and _call_end(text, match.end() - 1) != len(text) - 1):
        return UNNAMED
    return match.group(1).lower()


def _call_end(text: str, opening: int) -> int:
    """Index of the parenthesis closing the one at ``opening`` (quotes skipped)."""
    depth, quoted = 0, False
    for index in range(opening, len(text)):
        char = text[index]
        if char == "'":
            quoted = not quoted
        elif not quoted and char in "()":
            depth += 1 if char == "(" else -1
            if depth == 0:
                return index
    return -1


def _type_name(data_type: exp.DataType) -> str:
    text = data_type.sql(dialect="postgres").lower().split("(")[0].strip()
    return _TYPE_NAMES.get(text, text.split(".")[-1] or UNNAMED)
