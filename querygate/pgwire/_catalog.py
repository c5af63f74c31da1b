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

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from querygate.gateway import Gateway
from querygate.identity import Identity
from querygate.pgwire import _types as t
from querygate.policy import ColumnSpec, Plan, Role, plan

CATALOG_WORDS = re.compile(r"\b(pg_catalog|information_schema|pg_[a-z_]+)\b", re.IGNORECASE)
_FUNCTIONS_VIEW = re.compile(
    r"^\s*select\s+\*\s+from\s+(\"?querygate\"?\s*\.\s*)?\"?functions\"?\s*;?\s*$", re.IGNORECASE)
ADHOC_SCHEMA_NOTE = "readable with ad-hoc SQL"

Record = dict[str, object]


@dataclass(frozen=True)
class Rows:
    """A result built here: column names, their type OIDs, rows."""

    names: list[str]
    oids: list[int]
    rows: list[list[object]]


class GatewayView:
    """What the catalog needs from the gateway: functions, plans, schema, roles."""

    def __init__(self, gateway: Gateway, types: Mapping[str, tuple[int, ...]]) -> None:
        self.gateway = gateway
        self.types = types

    def callable(self, who: Identity) -> list[tuple[str, str, list[tuple[str, str]], Plan,
                                                    list[tuple[str, int]]]]:
        """(name, description, parameters, plan, visible columns) of each callable function."""
        out = []
        for analysed in self.gateway.callable_by(who):
            plan_ = self.gateway.plan_for(analysed.name, who.roles)
            params = [(p.name, p.type) for p in analysed.function.parameters]
            out.append((analysed.name, analysed.function.description, params, plan_,
                        result_columns(plan_, self.types.get(analysed.name, ()))))
        return out

    def adhoc_roles(self, who: Identity) -> list[Role]:
        roles = self.gateway.project.roles
        return [roles[r] for r in who.roles if r in roles and roles[r].options.get("adhoc") is True]

    def readable(self, who: Identity) -> list[tuple[str, str, bool, list[tuple[str, int, str]]]]:
        """For ad-hoc roles: (schema, table, is view, [(column, oid, decision)]) per relation."""
        roles = [_every_function(r) for r in self.adhoc_roles(who)]
        if not roles:
            return []
        out = []
        classification = self.gateway.classification
        for relation in self.gateway.schema.relations.values():
            specs = [ColumnSpec(c.name, frozenset({f"{relation.qualified}.{c.name}"}),
                                classification.tags_of(f"{relation.qualified}.{c.name}"))
                     for c in relation.columns]
            decided = plan("adhoc", specs, {}, roles)
            columns = []
            for column, planned in zip(relation.columns, decided.columns, strict=True):
                decision = "deny" if planned.verdict.decision == "deny" else planned.decision
                if decision != "deny":
                    oid = t.TEXT if decision != "allow" else oid_of_type(column.type)
                    columns.append((column.name, oid, decision))
            if columns:
                out.append((relation.schema, relation.name, relation.is_view, columns))
        return out


def _every_function(role: Role) -> Role:
    return dataclasses.replace(role, functions=("*",))


def result_columns(plan_: Plan, oids: Sequence[int]) -> list[tuple[str, int]]:
    """The visible columns of a function for a plan: masked ones as text."""
    out = []
    for i in plan_.visible():
        column = plan_.columns[i]
        oid = oids[i] if i < len(oids) and column.decision == "allow" else t.TEXT
        out.append((column.spec.name, wire_oid(oid)))
    return out


def wire_oid(oid: int) -> int:
    """A type this front door encodes in both formats, else text."""
    if oid in t.BINARY_OUT or t.ELEMENT_OF.get(oid) in t.BINARY_OUT:
        return oid
    return t.TEXT


_TYPE_NAMES = {"integer": t.INT4, "bigint": t.INT8, "smallint": t.INT2, "text": t.TEXT,
               "boolean": t.BOOL, "numeric": t.NUMERIC, "date": t.DATE, "uuid": t.UUID,
               "timestamp with time zone": t.TIMESTAMPTZ, "jsonb": t.JSONB, "json": t.JSON,
               "timestamp without time zone": t.TIMESTAMP, "double precision": t.FLOAT8,
               "real": t.FLOAT4, "bytea": t.BYTEA, "character varying": t.VARCHAR}


def oid_of_type(name: str) -> int:
    """An OID for ``format_type`` text (``numeric(12,2)`` → numeric)."""
    base = re.sub(r"\(.*?\)", "", name).strip()
    if base.endswith("[]"):
        inner = _TYPE_NAMES.get(base[:-2].strip())
        return t.ARRAY_OF.get(inner, t.TEXT) if inner else t.TEXT
    return _TYPE_NAMES.get(base, t.TEXT)


def pg_type_of(param_type: str) -> str:
    return t.type_name(t.param_oid(param_type))


def masks_of(plan_: Plan) -> str:
    return ", ".join(f"{name}: {how}" for name, how in sorted(plan_.fields.items()))


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
    records = _records(view, who, database, tables)
    records = [r for r in records if _passes(r, tree, params)]
    names, getters = _outputs(select, list(records[0]) if records else [])
    rows = [[get(r) for get in getters] for r in records]
    return Rows(names, _oids(rows, len(names)), rows)


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


def _records(view: GatewayView, who: Identity, database: str, tables: set[str]) -> list[Record]:
    if tables & {"pg_attribute", "columns"}:
        return _column_records(view, who)
    if tables & {"pg_proc", "routines", "parameters"}:
        return _function_records(view, who)
    if tables & {"pg_class", "tables", "views", "pg_tables", "pg_views"}:
        return _relation_records(view, who)
    if tables & {"pg_database"}:
        return [{"datname": database, "name": database, "owner": "querygate",
                 "encoding": "UTF8", "collate": "C", "ctype": "C", "oid": 1,
                 "locale provider": "libc", "table_cat": database}]
    if tables & {"pg_namespace", "schemata"}:
        return [{"nspname": "public", "name": "public", "schema_name": "public",
                 "table_schem": "public", "owner": "querygate", "oid": 2200,
                 "description": "the functions and tables you may use"}]
    if tables & {"pg_type"}:
        return _type_records()
    return []


def _function_records(view: GatewayView, who: Identity) -> list[Record]:
    out: list[Record] = []
    for i, (name, description, params, plan_, columns) in enumerate(view.callable(who)):
        args = ", ".join(f"{p} {pg_type_of(ty)}" for p, ty in params)
        result = "TABLE(" + ", ".join(f"{c} {t.type_name(o)}" for c, o in columns) + ")"
        remarks = description or ""
        if plan_.fields:
            remarks = (remarks + " " if remarks else "") + f"[masked: {masks_of(plan_)}]"
        out.append({
            "schema": "public", "nspname": "public", "name": name, "proname": name,
            "result data type": result, "argument data types": args, "type": "func",
            "prokind": "f", "proretset": True, "oid": 900_000 + i, "description": remarks,
            "remarks": remarks, "procedure_cat": None, "procedure_schem": "public",
            "procedure_name": name, "procedure_type": 2, "function_cat": None,
            "function_schem": "public", "function_name": name, "function_type": 2,
            "specific_name": name, "routine_schema": "public", "routine_name": name,
            "routine_type": "FUNCTION", "data_type": "record", "specific_schema": "public",
        })
    return out


def _relation_records(view: GatewayView, who: Identity) -> list[Record]:
    out: list[Record] = []
    for i, (schema, name, is_view, columns) in enumerate(view.readable(who)):
        masked = [f"{c}: {d}" for c, _, d in columns if d != "allow"]
        remarks = ADHOC_SCHEMA_NOTE + (f" [masked: {', '.join(masked)}]" if masked else "")
        kind = "view" if is_view else "table"
        out.append({
            "schema": schema, "nspname": schema, "name": name, "relname": name,
            "type": kind, "relkind": "v" if is_view else "r", "owner": "querygate",
            "oid": 800_000 + i, "description": remarks, "remarks": remarks,
            "table_cat": None, "table_schem": schema, "table_name": name,
            "table_type": kind.upper(), "table_schema": schema, "schemaname": schema,
            "tablename": name, "viewname": name, "tableowner": "querygate",
        })
    return out


def _column_records(view: GatewayView, who: Identity) -> list[Record]:
    out: list[Record] = []
    for schema, name, _, columns in view.readable(who):
        for position, (column, oid, decision) in enumerate(columns, start=1):
            note = None if decision == "allow" else f"masked: {decision}"
            out.append({
                "nspname": schema, "relname": name, "attname": column, "atttypid": oid,
                "attnotnull": False, "atttypmod": -1, "attlen": t.SIZES.get(oid, -1),
                "typtypmod": -1, "attnum": position, "attidentity": None,
                "attgenerated": None, "adsrc": None, "description": note, "typbasetype": 0,
                "typtype": "b", "table_schem": schema, "table_name": name,
                "table_schema": schema, "column_name": column, "data_type": t.type_name(oid),
                "ordinal_position": position, "is_nullable": "YES", "type_name": t.type_name(oid),
                "remarks": note, "typname": t.type_name(oid),
            })
    return out


_INTERNAL = {t.BOOL: "bool", t.INT2: "int2", t.INT4: "int4", t.INT8: "int8", t.TEXT: "text",
             t.NUMERIC: "numeric", t.DATE: "date", t.TIMESTAMPTZ: "timestamptz",
             t.TIMESTAMP: "timestamp", t.UUID: "uuid", t.FLOAT8: "float8", t.JSONB: "jsonb",
             t.VARCHAR: "varchar", t.BYTEA: "bytea"}


_INTERNAL_ALL = {**_INTERNAL, t.OID: "oid", t.NAME: "name", t.CHAR: "char", t.JSON: "json",
                 t.FLOAT4: "float4", t.BPCHAR: "bpchar"}


def _type_records() -> list[Record]:
    return [{"oid": oid, "typname": name, "nspname": "pg_catalog", "typtype": "b",
             "typarray": t.ARRAY_OF.get(oid, 0), "typelem": 0, "typdelim": ",",
             "typbasetype": 0, "typnotnull": False, "typrelid": 0, "is_array": False}
            for oid, name in _INTERNAL.items()]


# ---- filters on names ----------------------------------------------------------------------

def _passes(record: Record, tree: exp.Expression, params: Sequence[object]) -> bool:
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
