"""The rewrite: every table an ad-hoc statement names becomes its masked source.

Views are expanded into their definitions (rewritten the same way), so a view owned by a
privileged role is no way around the masks. A name that is not one of the project's tables or
views (a catalog such as ``pg_stats``, querygate's own schema) is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from sqlglot import exp

from querygate.adhoc._allow import Allowlist
from querygate.errors import PolicyDenied
from querygate.lineage import Relation, Schema, parse_query

MAX_VIEW_DEPTH = 8

Matches = Mapping[str, Sequence[str]]  # column -> the literals it must equal (one of)
Source = Callable[[Relation, Matches], exp.Select | None]
Matchable = Callable[[Relation, str], bool]


def _name(ident: exp.Expr | None) -> str | None:
    if not isinstance(ident, exp.Identifier):
        return None if ident is None else ident.name
    return str(ident.this) if ident.quoted else str(ident.this).lower()


def _cte_names(statement: exp.Expr) -> set[str]:
    return {n for cte in statement.find_all(exp.CTE)
            if (n := _name(cte.args["alias"].this if cte.args.get("alias") else None))}


def rewrite(statement: exp.Expr, schema: Schema, source: Source, allow: Allowlist,
            matchable: Matchable = lambda r, c: False, depth: int = 0) -> exp.Expr:
    """``statement`` with each table reference replaced by ``source(table)`` (in place)."""
    if depth > MAX_VIEW_DEPTH:
        raise PolicyDenied("adhoc: views nested too deeply",
                           f"views are nested more than {MAX_VIEW_DEPTH} deep")
    ctes = _cte_names(statement)
    matches = _matches(statement, schema, ctes, matchable)
    for select in list(statement.find_all(exp.Select)):
        _group_by_key(select, schema, ctes)
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
        table.replace(_replacement(table, relation, schema, source, allow, depth,
                                   matches.get(id(table), {})))
    return statement


def _matches(statement: exp.Expr, schema: Schema, ctes: set[str],
             matchable: Matchable) -> dict[int, dict[str, list[str]]]:
    """``match`` comparisons moved into the masked source they filter: a top-level ``AND``
    term ``t.col = 'literal'`` (or ``IN`` literals) of a WHERE, for a table read in that
    SELECT's FROM or an inner join. The term becomes TRUE; the source keeps only the rows
    whose keyed hash of ``col`` equals the literal's. Nothing else ever sees the column."""
    found: dict[int, dict[str, list[str]]] = {}
    for select in statement.find_all(exp.Select):
        where = select.args.get("where")
        tables = _inner_tables(select, ctes)
        if where is None or not tables:
            continue
        terms = list(where.this.flatten()) if isinstance(where.this, exp.And) else [where.this]
        for term in terms:
            target = _equality(term)
            if target is None:
                continue
            column, literals = target
            qualifier = _name(column.args.get("table"))
            table = tables.get(qualifier) if qualifier else (
                next(iter(tables.values())) if len(tables) == 1 and _single_source(select)
                else None)
            relation = _relation(table, schema) if table is not None else None
            name = _name(column.this)
            if relation is None or name is None or not matchable(relation, name):
                continue
            found.setdefault(id(table), {}).setdefault(name, []).extend(literals)
            term.replace(exp.true())
    return found


def _group_by_key(select: exp.Select, schema: Schema, ctes: set[str]) -> None:
    """``GROUP BY t.id`` lets PostgreSQL read t's other columns (the key determines them); a
    subquery in t's place has no key, so those columns are added to the GROUP BY, which
    groups the same rows."""
    group = select.args.get("group")
    if group is None:
        return
    tables = _inner_tables(select, ctes, inner_only=False)
    grouped = {(_name(c.args.get("table")), _name(c.this)) for c in group.expressions
               if isinstance(c, exp.Column)}
    for alias, table in tables.items():
        relation = _relation(table, schema)
        if relation is None or not relation.primary_key or not all(
                (alias, k) in grouped for k in relation.primary_key):
            continue
        for column in _own_columns(select):
            key = (_name(column.args.get("table")), _name(column.this))
            if key[0] == alias and key not in grouped and not isinstance(column.this, exp.Star):
                grouped.add(key)
                group.append("expressions", column.copy())


def _own_columns(select: exp.Select) -> list[exp.Column]:
    """Column references of this SELECT's own list, HAVING and ORDER BY (not of subqueries,
    not inside aggregates)."""
    found = []
    parts = [*select.expressions, select.args.get("having"), select.args.get("order")]
    for part in parts:
        if part is None:
            continue
        for node in part.walk(prune=lambda n: isinstance(n, exp.Select | exp.AggFunc)):
            if isinstance(node, exp.Column):
                found.append(node)
    return found


def _inner_tables(select: exp.Select, ctes: set[str],
                  inner_only: bool = True) -> dict[str, exp.Table]:
    from_ = select.args.get("from_")
    candidates = [from_.this] if from_ is not None else []
    candidates += [j.this for j in select.args.get("joins") or []
                   if not inner_only or (not j.side and j.kind in ("", "INNER", "CROSS"))]
    tables = {}
    for table in candidates:
        if isinstance(table, exp.Table) and isinstance(table.this, exp.Identifier):
            if table.args.get("db") is None and _name(table.this) in ctes:
                continue
            alias = table.args.get("alias")
            key = _name(alias.this) if alias is not None else _name(table.this)
            if key is not None:
                tables[key] = table
    return tables


def _single_source(select: exp.Select) -> bool:
    from_ = select.args.get("from_")
    return not select.args.get("joins") and from_ is not None


def _relation(table: exp.Table, schema: Schema) -> Relation | None:
    name = _name(table.this)
    relation = schema.find(name, _name(table.args.get("db"))) if name else None
    return relation if relation is not None and not relation.is_view else None


def _equality(term: exp.Expr) -> tuple[exp.Column, list[str]] | None:
    """``column = literal``, ``literal = column`` or ``column IN (literals)``."""
    if isinstance(term, exp.EQ):
        left, right = term.this, term.expression
        if isinstance(right, exp.Column):
            left, right = right, left
        if isinstance(left, exp.Column) and isinstance(right, exp.Literal):
            return left, [str(right.this)]
    if isinstance(term, exp.In) and isinstance(term.this, exp.Column) and not term.args.get(
            "query") and term.expressions and all(
            isinstance(e, exp.Literal) for e in term.expressions):
        return term.this, [str(e.this) for e in term.expressions]
    return None


def _replacement(table: exp.Table, relation: Relation, schema: Schema, source: Source,
                 allow: Allowlist, depth: int, matches: Matches) -> exp.Subquery:
    alias = table.args.get("alias")
    if alias is None:
        alias = exp.TableAlias(this=exp.to_identifier(relation.name, quoted=True))
    if relation.view_sql is not None:
        body = parse_query(relation.view_sql)
        allow.check(body, where=f"view {relation.qualified}")
        inner = rewrite(body, schema, source, allow, depth=depth + 1)
        if not alias.args.get("columns"):
            alias = alias.copy()
            alias.set("columns", [exp.to_identifier(c.name, quoted=True)
                                  for c in relation.columns])
        return exp.Subquery(this=inner, alias=alias)
    masked = source(relation, matches)
    if masked is None:
        raise PolicyDenied("adhoc: relation not readable",
                           f"the gateway cannot read {relation.qualified}")
    return exp.Subquery(this=masked, alias=alias)
