"""The rewrite: every table an ad-hoc statement names becomes its masked source.

Views are expanded into their definitions (rewritten the same way), so a view owned by a
privileged role is no way around the masks. A name that is not one of the project's tables or
views (a catalog such as ``pg_stats``, querygate's own schema) is refused.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from querygate.adhoc._allow import Allowlist
from querygate.errors import PolicyDenied
from querygate.lineage import Relation, Schema, parse_query

MAX_VIEW_DEPTH = 8

Source = Callable[[Relation], exp.Select | None]


def _name(ident: exp.Expr | None) -> str | None:
    if not isinstance(ident, exp.Identifier):
        return None if ident is None else ident.name
    return str(ident.this) if ident.quoted else str(ident.this).lower()


def _cte_names(statement: exp.Expr) -> set[str]:
    return {n for cte in statement.find_all(exp.CTE)
            if (n := _name(cte.args["alias"].this if cte.args.get("alias") else None))}


def rewrite(statement: exp.Expr, schema: Schema, source: Source, allow: Allowlist,
            depth: int = 0) -> exp.Expr:
    """``statement`` with each table reference replaced by ``source(table)`` (in place)."""
    if depth > MAX_VIEW_DEPTH:
        raise PolicyDenied("adhoc: views nested too deeply",
                           f"views are nested more than {MAX_VIEW_DEPTH} deep")
    ctes = _cte_names(statement)
    for table in list(statement.find_all(exp.Table)):
        if not isinstance(table.this, exp.Identifier):
            continue  # a function in FROM: checked by the allowlist
        name, db = _name(table.this), _name(table.args.get("db"))
        assert name is not None
        if table.args.get("catalog") is not None:
            raise PolicyDenied("adhoc: relation not allowed",
                               "ad-hoc SQL reads the project's tables by schema.table only")
        if db is None and name in ctes:
            continue
        relation = schema.find(name, db)
        if relation is None:
            shown = f"{db}.{name}" if db else name
            raise PolicyDenied("adhoc: relation not allowed",
                               f"ad-hoc SQL reads only the project's tables and views; "
                               f"{shown[:120]} is not one of them")
        if table.args.get("sample") is not None:
            raise PolicyDenied("adhoc: TABLESAMPLE", "TABLESAMPLE is not available in ad-hoc SQL")
        table.replace(_replacement(table, relation, schema, source, allow, depth))
    return statement


def _replacement(table: exp.Table, relation: Relation, schema: Schema, source: Source,
                 allow: Allowlist, depth: int) -> exp.Subquery:
    alias = table.args.get("alias")
    if alias is None:
        alias = exp.TableAlias(this=exp.to_identifier(relation.name, quoted=True))
    if relation.view_sql is not None:
        body = parse_query(relation.view_sql)
        allow.check(body, where=f"view {relation.qualified}")
        inner = rewrite(body, schema, source, allow, depth + 1)
        if not alias.args.get("columns"):
            alias = alias.copy()
            alias.set("columns", [exp.to_identifier(c.name, quoted=True)
                                  for c in relation.columns])
        return exp.Subquery(this=inner, alias=alias)
    masked = source(relation)
    if masked is None:
        raise PolicyDenied("adhoc: relation not readable",
                           f"the gateway cannot read {relation.qualified}")
    return exp.Subquery(this=masked, alias=alias)
