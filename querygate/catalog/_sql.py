"""Placeholders: ``:name`` in a query file becomes a server-side bound parameter."""

from __future__ import annotations

import itertools

import sqlglot
from sqlglot.errors import SqlglotError
from sqlglot.tokenizer_core import TokenType

_DIALECT = sqlglot.Dialect.get_or_raise("postgres")


def placeholders(sql: str) -> list[tuple[int, int, str]]:
    """Every ``:name`` outside literals, comments and ``::`` casts: (start, end, name)."""
    try:
        tokens = _DIALECT.tokenize(sql)
    except SqlglotError as exc:
        raise ValueError(f"SQL does not tokenize: {exc}") from None
    found = []
    for colon, name in itertools.pairwise(tokens):
        if (
            colon.token_type == TokenType.COLON
            and name.start == colon.end + 1
            and name.token_type not in (TokenType.STRING, TokenType.NUMBER)
            and name.text.isidentifier()
        ):
            found.append((colon.start, name.end + 1, name.text))
    return found


def to_psycopg(sql: str) -> str:
    """The query with ``:name`` as ``%(name)s`` and every other ``%`` doubled.

    psycopg then sends the values separately (extended protocol): they are
    never part of the SQL text.
    """
    out: list[str] = []
    cursor = 0
    for start, end, name in placeholders(sql):
        out.append(sql[cursor:start].replace("%", "%%"))
        out.append(f"%({name})s")
        cursor = end
    out.append(sql[cursor:].replace("%", "%%"))
    return "".join(out).strip().rstrip(";").rstrip()
