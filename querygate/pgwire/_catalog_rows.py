"""The records a catalog statement reads: querygate's own functions, relations, columns, types,
database and schema, each keyed by every name the PostgreSQL catalogs, ``information_schema``
and JDBC's ``DatabaseMetaData`` give that value, so a statement's output columns find them."""

from __future__ import annotations

from querygate.identity import Identity
from querygate.pgwire import _types as t
from querygate.pgwire._view import GatewayView, Readable, Record, masks_of, pg_type_of

ADHOC_SCHEMA_NOTE = "readable with ad-hoc SQL"
# the relations a catalog statement may join without emptying its result: those modelled here
# (and the ones only ever joined for names and comments); an inner join with any other one
# (pg_inherits, pg_index, pg_constraint, pg_publication, ...) has no rows here
MODELLED = frozenset({
    "pg_class", "pg_namespace", "pg_attribute", "pg_proc", "pg_type", "pg_database",
    "pg_description", "pg_tables", "pg_views", "pg_roles", "pg_user", "pg_am", "pg_language",
    "pg_attrdef", "pg_collation", "pg_tablespace", "tables", "views", "columns", "routines",
    "parameters", "schemata"})

INTERNAL = {t.BOOL: "bool", t.INT2: "int2", t.INT4: "int4", t.INT8: "int8", t.TEXT: "text",
            t.NUMERIC: "numeric", t.DATE: "date", t.TIMESTAMPTZ: "timestamptz",
            t.TIMESTAMP: "timestamp", t.UUID: "uuid", t.FLOAT8: "float8", t.JSONB: "jsonb",
            t.VARCHAR: "varchar", t.BYTEA: "bytea"}
INTERNAL_ALL = {**INTERNAL, t.OID: "oid", t.NAME: "name", t.CHAR: "char", t.JSON: "json",
                t.FLOAT4: "float4", t.BPCHAR: "bpchar"}


def records(view: GatewayView, who: Identity, database: str, tables: set[str]) -> list[Record]:
    """The records of the most specific catalog relation among ``tables``."""
    if tables & {"pg_attribute", "columns"}:
        return _column_records(view.readable(who))
    if tables & {"pg_proc", "routines", "parameters"}:
        return _function_records(view, who)
    if tables & {"pg_class", "tables", "views", "pg_tables", "pg_views"}:
        return _relation_records(view.readable(who))
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


def _relation_records(readable: list[Readable]) -> list[Record]:
    out: list[Record] = []
    for relation in readable:
        schema, name = relation.schema, relation.name
        masked = [f"{c.name}: {c.decision}" for c in relation.columns if c.decision != "allow"]
        remarks = ADHOC_SCHEMA_NOTE + (f" [masked: {', '.join(masked)}]" if masked else "")
        kind = "view" if relation.is_view else "table"
        out.append({
            "schema": schema, "nspname": schema, "name": name, "relname": name,
            "type": kind, "relkind": "v" if relation.is_view else "r", "owner": "querygate",
            "oid": relation.oid, "description": remarks, "remarks": remarks,
            "obj_description": remarks, "table_cat": None, "table_schem": schema,
            "table_name": name, "table_type": kind.upper(), "table_schema": schema,
            "schemaname": schema, "tablename": name, "viewname": name, "tableowner": "querygate",
            # what psql's \d reads of a relation: nothing it has beyond its columns
            "relchecks": 0, "relhasindex": False, "relhasrules": False, "relhastriggers": False,
            "relrowsecurity": False, "relforcerowsecurity": False, "relispartition": False,
            "reltablespace": 0, "relpersistence": "p", "persistence": "permanent",
            "relreplident": "d",
            "amname": None if relation.is_view else "heap", "relnatts": len(relation.columns),
        })
    return out


def _column_records(readable: list[Readable]) -> list[Record]:
    out: list[Record] = []
    for relation in readable:
        schema, name = relation.schema, relation.name
        for position, column in enumerate(relation.columns, start=1):
            oid, type_name = column.oid, t.type_name(column.oid)
            out.append({
                "nspname": schema, "relname": name, "attrelid": relation.oid,
                "attname": column.name, "atttypid": oid, "attnotnull": False, "atttypmod": -1,
                "attlen": t.SIZES.get(oid, -1), "typtypmod": -1, "attnum": position,
                "attidentity": "", "attgenerated": "", "adsrc": None, "attcollation": None,
                "attstorage": "p" if oid in t.SIZES else "x", "attcompression": "",
                "attstattarget": None, "format_type": column.type_text,
                "description": column.note, "col_description": column.note, "typbasetype": 0,
                "typtype": "b", "table_schem": schema, "table_name": name,
                "table_schema": schema, "column_name": column.name, "data_type": type_name,
                "ordinal_position": position, "is_nullable": "YES", "type_name": type_name,
                "remarks": column.note, "typname": type_name,
            })
    return out


def _type_records() -> list[Record]:
    return [{"oid": oid, "typname": name, "nspname": "pg_catalog", "typtype": "b",
             "typarray": t.ARRAY_OF.get(oid, 0), "typelem": 0, "typdelim": ",",
             "typbasetype": 0, "typnotnull": False, "typrelid": 0, "is_array": False}
            for oid, name in INTERNAL.items()]
