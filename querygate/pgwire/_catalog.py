"""Catalog queries answered from querygate's own data, never from the database's catalogs.

psql's meta-commands (``\\df``, ``\\dt``, ``\\l``) and JDBC's ``DatabaseMetaData`` send SQL over
``pg_catalog`` and ``information_schema``. Such a statement is recognised by the catalog
relations it reads; the rows are built from what the caller may use (the functions they may
call; for ad-hoc roles, the tables and columns they may read, masks noted in the comments)
and laid out under the statement's own output column names. Filters on names (``LIKE``, ``~``,
``=``, ``IN``) are applied; anything else in the statement is ignored. A catalog statement
that cannot be read gets an error, never the real catalog.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from querygate.identity import Identity
from querygate.pgwire import _types as t
from querygate.pgwire._catalog_filter import passes
from querygate.pgwire._catalog_rows import INTERNAL_ALL as _INTERNAL_ALL
from querygate.pgwire._catalog_rows import MODELLED, records
from querygate.pgwire._view import GatewayView, Record, Rows, masks_of, result_columns, wire_oid

__all__ = ["CatalogError", "GatewayView", "Rows", "answer", "functions_view",
           "is_catalog_query", "is_functions_view", "is_type_introspection", "result_columns",
           "type_introspection", "wire_oid"]

CATALOG_WORDS = re.compile(r"\b(pg_catalog|information_schema|pg_[a-z_]+)\b", re.IGNORECASE)
_FUNCTIONS_VIEW = re.compile(
    r"^\s*select\s+\*\s+from\s+(\"?querygate\"?\s*\.\s*)?\"?functions\"?\s*;?\s*$", re.IGNORECASE)


# ---- querygate.functions -------------------------------------------------------------------

def is_functions_view(text: str) -> bool:
    return bool(_FUNCTIONS_VIEW.match(text))


def functions_view(view: GatewayView, who: Identity) -> Rows:
    rows: list[list[object]] = []
    for name, description, params, plan_, columns in view.callable(who):
        rows.append([name, ", ".join(f"{p} {ty}" for p, ty in params),
                     ", ".join(f"{c} {t.type_name(o)}" for c, o in columns),
                     masks_of(plan_) or None, description or None])
    return Rows(["name", "parameters", "returns", "masks", "description"], [t.TEXT] * 5, rows)


# ---- asyncpg's type introspection ----------------------------------------------------------

def is_type_introspection(text: str) -> bool:
    """asyncpg's lookup of types it has no codec for (its ``typeinfo_tree`` query)."""
    return "typeinfo_tree" in text and "pg_type" in text


_INTROSPECTION = [("oid", t.OID), ("ns", t.NAME), ("name", t.NAME), ("kind", t.CHAR),
                  ("basetype", t.OID), ("elemtype", t.OID), ("elemdelim", t.CHAR),
                  ("range_subtype", t.OID), ("attrtypoids", t.ARRAY_OF[t.OID]),
                  ("attrnames", t.ARRAY_OF[t.TEXT]), ("depth", t.INT4),
                  ("basetype_name", t.TEXT), ("elemtype_name", t.TEXT),
                  ("range_subtype_name", t.TEXT)]


def type_introspection(oids: Sequence[int]) -> Rows:
    """The rows asyncpg's ``typeinfo_tree`` query expects, for the types this front door
    sends (arrays with their element types first); unknown OIDs are left out."""
    rows: list[list[object]] = []
    for oid in oids:
        element = t.ELEMENT_OF.get(oid)
        if element is not None and element in _INTERNAL_ALL:
            rows.append([element, "pg_catalog", _INTERNAL_ALL[element], "b", None, None, ",",
                         None, None, None, 1, None, None, None])
            rows.append([oid, "pg_catalog", "_" + _INTERNAL_ALL[element], "b", None, element,
                         ",", None, None, None, 0, None, _INTERNAL_ALL[element], None])
        elif oid in _INTERNAL_ALL:
            rows.append([oid, "pg_catalog", _INTERNAL_ALL[oid], "b", None, None, ",", None,
                         None, None, 0, None, None, None])
    return Rows([n for n, _ in _INTROSPECTION], [o for _, o in _INTROSPECTION], rows)


# ---- pg_catalog and information_schema -----------------------------------------------------

def is_catalog_query(text: str) -> bool:
    return bool(CATALOG_WORDS.search(text))


class CatalogError(ValueError):
    """A catalog statement querygate cannot read."""


def answer(view: GatewayView, who: Identity, database: str, text: str,
           params: Sequence[object] = ()) -> Rows:
    """The statement's result over querygate's own catalog."""
    try:
        parsed = sqlglot.parse_one(text, dialect="postgres")
    except SqlglotError:
        parsed = None
    if not isinstance(parsed, exp.Expression):
        raise CatalogError("querygate answers catalog queries from its own catalog, and "
                           "cannot read this one")
    tree = parsed
    select = _outermost_select(tree)
    if select is None:
        raise CatalogError("querygate answers only SELECT statements over the catalog")
    tables = {x.name.lower() for x in tree.find_all(exp.Table)}
    found = records(view, who, database, tables) if _joins_modelled(select) else []
    found = [r for r in found if passes(r, tree, params)]
    names, getters = _outputs(select, list(found[0]) if found else [])
    rows = [[get(r) for get in getters] for r in found]
    return Rows(names, _oids(rows, len(names)), rows)


def _joins_modelled(select: exp.Select) -> bool:
    """False when the statement's FROM needs a row of a relation querygate has no rows of
    (psql's ``\\d`` asks ``pg_inherits``, ``pg_index``, ``pg_publication`` ... about a table):
    an inner join with an empty relation is empty."""
    source = select.args.get("from_") or select.args.get("from")
    needed = [source.this] if source is not None else []
    needed += [j.this for j in select.args.get("joins") or () if j.side not in ("LEFT", "FULL")]
    for node in needed:
        if isinstance(node, exp.Table) and node.name.lower() not in MODELLED:
            return False
        inner = node.this if isinstance(node, exp.Subquery) else None
        if isinstance(inner, exp.Select) and not _joins_modelled(inner):
            return False  # JDBC's getPrimaryKeys joins (SELECT ... FROM pg_index ...)
    return True


def _outermost_select(tree: exp.Expression) -> exp.Select | None:
    node: exp.Expression | None = tree
    while isinstance(node, exp.Select):
        if not any(isinstance(e, exp.Star) for e in node.expressions):
            return node
        source = node.args.get("from_") or node.args.get("from")
        inner = source.this if source is not None else None
        if isinstance(inner, exp.Subquery):
            node = inner.this
        else:
            return node
    if isinstance(node, exp.Union):
        return _outermost_select(node.this)
    return None


def _outputs(select: exp.Select, every: list[str]
             ) -> tuple[list[str], list[Callable[[Record], object]]]:
    """The statement's output columns, each with how to read it from a record; ``*`` and
    ``t.*`` stand for every key of the records (``every``)."""
    names: list[str] = []
    getters: list[Callable[[Record], object]] = []
    for projection in select.expressions:
        if isinstance(projection, exp.Star) or (isinstance(projection, exp.Column)
                                                 and isinstance(projection.this, exp.Star)):
            names += every
            getters += [_lookup((key,)) for key in every]
            continue
        name = projection.alias_or_name or "?column?"
        inner = projection.unalias()
        keys = [name.lower()]
        if isinstance(inner, exp.Column):
            keys.append(inner.name.lower())
        elif isinstance(inner, exp.Literal | exp.Null | exp.Boolean):
            names.append(name)
            getters.append(_constant(None if isinstance(inner, exp.Null) else inner.this))
            continue
        names.append(name)
        getters.append(_lookup(tuple(keys)))
    return names, getters


def _constant(value: object) -> Callable[[Record], object]:
    return lambda _record: value


def _lookup(keys: tuple[str, ...]) -> Callable[[Record], object]:
    return lambda record: next((record[k] for k in keys if k in record), None)


def _oids(rows: list[list[object]], width: int) -> list[int]:
    oids = []
    for i in range(width):
        found = next((t.oid_of_value(row[i]) for row in rows if row[i] is not None), None)
        oids.append(found or t.TEXT)
    return oids
