"""The rewrite: every table an ad-hoc statement names becomes its masked source.

Views are expanded into their definitions (rewritten the same way), so a view owned by a
privileged role is no way around the masks. A name that is not one of the project's tables or
views (a catalog such as ``pg_stats``, querygate's own schema) is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlglot import exp

from querygate.adhoc._allow import Allowlist
from querygate.errors import PolicyDenied
from querygate.lineage import Relation, Schema, parse_query

MAX_VIEW_DEPTH = 8

Matches = Mapping[str, Sequence[str]]  # column -> the literals it must equal (one of)
Source = Callable[[Relation, Matches], exp.Select | None]
Matchable = Callable[[Relation, str], bool]
SourceSql = Callable[[Relation], str | None]  # a table's stand-in as SQL text (no matches)


def _name(ident: exp.Expr | None) -> str | None:
    if not isinstance(ident, exp.Identifier):
        return None if ident is None else ident.name
    return str(ident.this) if ident.quoted else str(ident.this).lower()


def _cte_names(statement: exp.Expr) -> set[str]:
    return {n for cte in statement.find_all(exp.CTE)
            if (n := _name(cte.args["alias"].this if cte.args.get("alias") else None))}


Splice = tuple[int, int, str]  # (start, end) of a table's name in the text, and its stand-in


@dataclass(frozen=True)
class TableRef:
    """One table name as the caller wrote it, taken before the analysis changes the tree."""

    table: exp.Table
    relation: Relation
    start: int  # where the name (with its schema) stands in the text; -1 when unknown
    end: int
    aliased: bool


def table_refs(statement: exp.Expr, schema: Schema) -> list[TableRef]:
    """The tables ``statement`` names (not CTEs, not functions in FROM), or the refusal."""
    ctes = _cte_names(statement)
    refs = []
    for table in statement.find_all(exp.Table):
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
        first = table.args.get("db") or table.this
        start, end = first.meta.get("start"), table.this.meta.get("end")
        refs.append(TableRef(table, relation, -1 if start is None else int(start),
                             -1 if end is None else int(end) + 1,
                             table.args.get("alias") is not None))
    return refs


def needs_tree(statement: exp.Expr, schema: Schema, refs: list[TableRef],
               matchable: Matchable) -> bool:
    """Whether more than the table names changes (match terms, GROUP BY, ``ONLY``), so the
    statement must be rewritten as a tree rather than spliced as text."""
    if any(r.start < 0 or r.end < 0 or r.table.args.get("only") for r in refs):
        return True
    ctes = _cte_names(statement)
    return bool(_matches(statement, schema, ctes, matchable, mutate=False)) or any(
        _group_by_key(select, schema, ctes, mutate=False)
        for select in statement.find_all(exp.Select))


def spliced(sql: str, refs: list[TableRef], schema: Schema, source_sql: SourceSql,
            source: Source, allow: Allowlist) -> str:
    """``sql`` with each table name replaced by its stand-in: the caller's own text, with no
    regeneration of the rest and no drift from what they wrote."""
    out, at = [], 0
    for ref in sorted(refs, key=lambda r: r.start):
        if ref.relation.view_sql is not None:
            stand_in = _replacement(ref.table, ref.relation, schema, source, allow, 0, {})
            text = stand_in.sql(dialect="postgres", normalize_functions=False, copy=False)
            if ref.aliased:  # the caller's alias follows the name; keep the view's columns
                text = f"({stand_in.this.sql(dialect='postgres', normalize_functions=False)})"
        else:
            inner = source_sql(ref.relation)
            if inner is None:
                raise PolicyDenied("adhoc: relation not readable",
                                   f"the gateway cannot read {ref.relation.qualified}")
            text = f"({inner})"
            if not ref.aliased:
                text += " AS " + exp.to_identifier(ref.table.name, quoted=True).sql(
                    dialect="postgres")
        out += [sql[at:ref.start], text]
        at = ref.end
    return "".join(out) + sql[at:]


def rewrite(statement: exp.Expr, schema: Schema, source: Source, allow: Allowlist,
            matchable: Matchable = lambda r, c: False, depth: int = 0) -> None:
    """Replace each table reference in ``statement`` by ``source(table)``, in place, with
    match terms moved into their sources and GROUP BY completed."""
    if depth > MAX_VIEW_DEPTH:
        raise PolicyDenied("adhoc: views nested too deeply",
                           f"views are nested more than {MAX_VIEW_DEPTH} deep")
    ctes = _cte_names(statement)
    matches = _matches(statement, schema, ctes, matchable)
    for select in list(statement.find_all(exp.Select)):
        _group_by_key(select, schema, ctes)
    for ref in table_refs(statement, schema):
        ref.table.replace(_replacement(ref.table, ref.relation, schema, source, allow, depth,
                                       matches.get(id(ref.table), {})))


def _matches(statement: exp.Expr, schema: Schema, ctes: set[str],
             matchable: Matchable, mutate: bool = True) -> dict[int, dict[str, list[str]]]:
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
            if mutate:
                term.replace(exp.true())
    return found


def _group_by_key(select: exp.Select, schema: Schema, ctes: set[str],
                  mutate: bool = True) -> bool:
    """``GROUP BY t.id`` lets PostgreSQL read t's other columns (the key determines them); a
    subquery in t's place has no key, so those columns are added to the GROUP BY, which
    groups the same rows."""
    group = select.args.get("group")
    if group is None:
        return False
    added = False
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
                if not mutate:
                    return True
                grouped.add(key)
                group.append("expressions", column.copy())
                added = True
    return added


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
        rewrite(body, schema, source, allow, depth=depth + 1)
        if not alias.args.get("columns"):
            alias = alias.copy()
            alias.set("columns", [exp.to_identifier(c.name, quoted=True)
                                  for c in relation.columns])
        return exp.Subquery(this=body, alias=alias)
    masked = source(relation, matches)
    if masked is None:
        raise PolicyDenied("adhoc: relation not readable",
                           f"the gateway cannot read {relation.qualified}")
    return exp.Subquery(this=masked, alias=alias)
