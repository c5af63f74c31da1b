"""Read the live catalog (pg_catalog) into a Schema."""

from __future__ import annotations

from typing import Any

import psycopg

from querygate.lineage._model import Column, Relation, Schema

_HIDDEN = ["pg_catalog", "information_schema", "pg_toast", "querygate", "querygate_masked"]

_RELATIONS = """
SELECT c.oid, n.nspname, c.relname,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(c.oid) END
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm')
  AND n.nspname <> ALL(%(hidden)s)
  AND n.nspname NOT LIKE 'pg\\_temp\\_%%'
  AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%%'
ORDER BY n.nspname, c.relname
"""

_COLUMNS = """
SELECT a.attrelid, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = ANY(%(oids)s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""

_PRIMARY_KEYS = """
SELECT con.conrelid, a.attname
FROM pg_catalog.pg_constraint con
CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, position)
JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
WHERE con.contype = 'p' AND con.conrelid = ANY(%(oids)s)
ORDER BY con.conrelid, k.position
"""

# User functions (not C, not owned by an extension): their bodies may read tables.
_FUNCTIONS = """
SELECT n.nspname || '.' || p.proname,
       CASE WHEN l.lanname = 'sql' AND coalesce(p.prosrc, '') = ''
            THEN pg_catalog.pg_get_functiondef(p.oid) ELSE p.prosrc END
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
JOIN pg_catalog.pg_language l ON l.oid = p.prolang
WHERE p.prokind = 'f'
  AND l.lanname NOT IN ('c', 'internal')
  AND n.nspname <> ALL(%(hidden)s)
  AND NOT EXISTS (
      SELECT 1 FROM pg_catalog.pg_depend d
      WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
ORDER BY 1, p.oid
"""


async def load_schema(conn: psycopg.AsyncConnection[Any]) -> Schema:
    """The relations of every user schema, with columns, primary keys and view definitions."""
    async with conn.cursor() as cur:
        await cur.execute(_RELATIONS, {"hidden": _HIDDEN})
        heads = [(int(oid), str(s), str(n), v) for oid, s, n, v in await cur.fetchall()]
        oids = [head[0] for head in heads]
        await cur.execute(_COLUMNS, {"oids": oids})
        columns = _group(await cur.fetchall())
        await cur.execute(_PRIMARY_KEYS, {"oids": oids})
        keys = _group(await cur.fetchall())
        await cur.execute(_FUNCTIONS, {"hidden": _HIDDEN})
        functions = _join_bodies(await cur.fetchall())
        await cur.execute("SELECT pg_catalog.current_schemas(false)")
        row = await cur.fetchone()
    relations = [_relation(head, columns, keys) for head in heads]
    search_path = tuple(row[0]) if row and row[0] else ("public",)
    return Schema({r.qualified: r for r in relations}, search_path, functions)


_Grouped = dict[int, list[tuple[str, str]]]


def _relation(head: tuple[int, str, str, Any], columns: _Grouped, keys: _Grouped) -> Relation:
    oid, schema, name, view_sql = head
    return Relation(
        schema=schema,
        name=name,
        columns=tuple(Column(n, t) for n, t in columns.get(oid, [])),
        primary_key=tuple(n for n, _ in keys.get(oid, [])),
        view_sql=None if view_sql is None else str(view_sql),
        oid=oid,
    )


def _group(rows: list[tuple[Any, ...]]) -> _Grouped:
    grouped: _Grouped = {}
    for oid, name, *rest in rows:
        grouped.setdefault(int(oid), []).append((str(name), str(rest[0]) if rest else ""))
    return grouped


def _join_bodies(rows: list[tuple[Any, ...]]) -> dict[str, str]:
    """Overloads share a name: their bodies are kept together, one statement each."""
    bodies: dict[str, list[str]] = {}
    for key, body in rows:
        bodies.setdefault(str(key), []).append(str(body or "").strip().rstrip(";"))
    return {key: ";\n".join(parts) for key, parts in bodies.items()}
