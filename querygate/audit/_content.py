"""The hashed content as the database renders it, and the constraint that holds every row to it.

An event's columns, rendered by the server in canonical key order (text through ``to_json``,
the four ``json`` documents verbatim, numbers as they are), are exactly the bytes the writer
hashed. One rendering serves two uses:

- ``querygate.audit_content_hash(…)``, a SQL function over the columns, behind the CHECK
  constraint ``audit_events_content``: every row, in every partition, must hash to its
  ``content_hash``. PostgreSQL refuses an edited column even with triggers off, so editing a
  field means first dropping or disabling that constraint, and ``structure_problem`` sees that.
  While the structure holds, ``audit verify`` walks the chain over the stored hashes alone.
- The *deep* walk, which renders every event on the server and hashes it in the verifier: for
  stores whose structure does not hold, and on demand (``audit verify --deep``).

The function body is written with schema-qualified functions and types (no operators), so no
search_path a session sets can change what it computes; it is inlined into the constraint. It
renders with ``row_to_json`` over ``querygate.audit_canonical`` (half the database's CPU of one
``concat`` per field); the deep walk renders with ``concat`` and depends on no type.
"""

from __future__ import annotations

from typing import Any

import psycopg

from querygate.audit._event import ENCODING_VERSION

FUNCTION = "querygate.audit_content_hash"
CONSTRAINT = "audit_events_content"

# The hashed fields in canonical (sorted) key order, their column types, and how the server
# renders each as JSON. "v" is the encoding version, a constant, not a column.
FIELDS = (("actor_email", "text"), ("actor_id", "text"), ("actor_roles", "text[]"),
          ("client_addr", "text"), ("context", "json"), ("decision", "text"),
          ("duration_us", "bigint"), ("error_code", "text"), ("event_id", "uuid"),
          ("fields", "json"), ("function_name", "text"), ("occurred_at", "timestamptz"),
          ("parameters", "json"), ("policy_version", "text"), ("reason", "text"),
          ("rows_returned", "integer"), ("subjects", "json"))
_RENDER = {
    "text": ("coalesce(pg_catalog.to_json({0})::text, 'null')",),
    "text[]": ("pg_catalog.array_to_json({0})::text",),
    "json": ("{0}::text",),
    "bigint": ("{0}::text",),
    "integer": ("{0}::text",),
    "uuid": ("'\"'", "{0}::text", "'\"'"),
    "timestamptz": ("'\"'", "pg_catalog.to_char({0} AT TIME ZONE 'UTC', "
                    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')", "'\"'"),
}
COLUMN_NAMES = tuple(name for name, _ in FIELDS)


def rendering(prefix: str = "") -> str:
    """The canonical JSON of an event as one ``concat`` over its columns (``prefix`` + name)."""
    parts: list[str] = []
    for i, (name, kind) in enumerate(FIELDS):
        parts.append("'" + ("{" if i == 0 else ",") + f'"{name}":' + "'")
        parts += [piece.format(prefix + name) for piece in _RENDER[kind]]
    parts.append(f"',\"v\":{ENCODING_VERSION}}}'")
    return "pg_catalog.concat(" + ", ".join(parts) + ")"


# The constraint's function renders the same bytes more cheaply (about half the database's CPU
# per event): one ``row_to_json`` over a composite type whose attributes are the hashed fields in
# canonical order, which writes each value as ``to_json`` does and the separators compactly.
# The type is part of what the constraint vouches with, so ``structure_problem`` checks it too;
# the deep walk keeps ``rendering()``, which depends on nothing an owner can redefine.
CANONICAL_TYPE = "querygate.audit_canonical"
_TYPE_ATTRIBUTES = (*((name, "text" if kind == "timestamptz" else kind) for name, kind in FIELDS),
                    ("v", "integer"))
_ROW = ", ".join([_RENDER["timestamptz"][1].format(name) if kind == "timestamptz" else name
                  for name, kind in FIELDS] + [str(ENCODING_VERSION)])
FUNCTION_BODY = ("SELECT pg_catalog.sha256(pg_catalog.convert_to(pg_catalog.row_to_json("
                 f"ROW({_ROW})::{CANONICAL_TYPE})::text, 'UTF8'))")
_SIGNATURE = ", ".join(kind for _, kind in FIELDS)
_ARGUMENTS = ", ".join(f"{name} {kind}" for name, kind in FIELDS)
_TYPE_DEFINITION = ", ".join(f"{name} {kind}" for name, kind in _TYPE_ATTRIBUTES)
_TYPE_STATE = """
SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a
WHERE a.attrelid = (SELECT t.typrelid FROM pg_catalog.pg_type t WHERE t.oid = pg_catalog.to_regtype(%s))
  AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""
# What pg_get_constraintdef shows for the constraint with search_path = pg_catalog.
EXPECTED_DEFINITION = (f"CHECK (COALESCE(({FUNCTION}({', '.join(COLUMN_NAMES)}) = content_hash), "
                       "false))")


def _canonical_type(conn: psycopg.Connection[Any]) -> list[str]:
    """The composite type the function renders with, created or put back as this build has it."""
    found = [tuple(row) for row in conn.execute(_TYPE_STATE, (CANONICAL_TYPE,)).fetchall()]
    if found == list(_TYPE_ATTRIBUTES):
        return []
    done = []
    if conn.execute("SELECT pg_catalog.to_regtype(%s)", (CANONICAL_TYPE,)).fetchone() != (None,):
        conn.execute(f"DROP TYPE {CANONICAL_TYPE}")
        done.append(f"put back {CANONICAL_TYPE}, which had been changed")
    conn.execute(f"CREATE TYPE {CANONICAL_TYPE} AS ({_TYPE_DEFINITION})")
    return done


def install(conn: psycopg.Connection[Any]) -> list[str]:
    """Create or refresh the function and, where the store can hold it, add the constraint
    ``NOT VALID`` (new rows are held to it at once); run as the owner role inside setup's
    transaction. ``validate`` then checks the rows already there, in a transaction of its
    own. Returns what was done, for setup to print."""
    done = _canonical_type(conn)
    conn.execute(f"CREATE OR REPLACE FUNCTION {FUNCTION}({_ARGUMENTS}) RETURNS bytea "
                 f"LANGUAGE sql STABLE PARALLEL SAFE AS $querygate${FUNCTION_BODY}$querygate$")
    if _validated(conn) is not None:
        return done
    kinds = conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
        "'querygate.audit_events'::regclass AND attname = ANY(%s)",
        (["parameters", "fields", "subjects", "context"],)).fetchall()
    if any(kind != "json" for _, kind in kinds):
        return [*done, "left the audit log without its content constraint: its documents are "
                "jsonb (a store from before the json layout), so `audit verify` walks it in full"]
    columns = ", ".join(COLUMN_NAMES)
    conn.execute(f"ALTER TABLE querygate.audit_events ADD CONSTRAINT {CONSTRAINT} CHECK "
                 f"(coalesce({FUNCTION}({columns}) = content_hash, false)) NOT VALID")
    return [*done, f"added {CONSTRAINT}: every new audit event must hash to its content_hash"]


def validate(conn: psycopg.Connection[Any]) -> list[str]:
    """Check the events already in the log against the constraint, if it is not validated yet;
    run as the owner role, after setup's transaction. It takes a lock that lets appends go on
    (SHARE UPDATE EXCLUSIVE), and reads the whole log: minutes for millions of events."""
    if _validated(conn) is not False:
        return []
    try:
        with conn.transaction():
            conn.execute(f"ALTER TABLE querygate.audit_events VALIDATE CONSTRAINT {CONSTRAINT}")
    except psycopg.errors.CheckViolation:
        return [f"{CONSTRAINT} holds for new events, but some events already in the log do not "
                "hash to their content_hash: run `querygate audit verify`, which walks this log "
                "in full and names the first such event"]
    return [f"validated {CONSTRAINT} over the events already in the log"]


def _validated(conn: psycopg.Connection[Any]) -> bool | None:
    """Whether the constraint is validated; None when it is not there."""
    row = conn.execute("SELECT convalidated FROM pg_constraint WHERE conname = %s AND "
                       "conrelid = 'querygate.audit_events'::regclass", (CONSTRAINT,)).fetchone()
    return None if row is None else bool(row[0])


_PARTS = f"""
SELECT p.relid::text, c.convalidated, pg_get_constraintdef(c.oid),
       (SELECT array_agg(d.refobjid::regprocedure::text) FROM pg_depend d
        WHERE d.classid = 'pg_constraint'::regclass AND d.objid = c.oid
          AND d.refclassid = 'pg_proc'::regclass)
FROM pg_partition_tree('querygate.audit_events') p
LEFT JOIN pg_constraint c ON c.conrelid = p.relid AND c.conname = '{CONSTRAINT}'
ORDER BY p.level, p.relid::text
"""
_FUNCTION_STATE = """
SELECT prosrc, prosecdef, proconfig IS NULL, l.lanname FROM pg_proc p
JOIN pg_language l ON l.oid = p.prolang WHERE p.oid = to_regprocedure(%s)
"""


async def structure_problem(conn: psycopg.AsyncConnection[Any]) -> str | None:
    """Why the constraint does not vouch for every row, or None when it does: the function's
    body is this build's, and every table of the log (the parent and each partition, at any
    depth) holds the constraint, validated, calling that function. Call inside a transaction
    (it sets search_path locally, so definitions are shown fully qualified)."""
    await conn.execute("SET LOCAL search_path = pg_catalog")
    procedure = f"{FUNCTION}({_SIGNATURE})"
    cur = await conn.execute(_FUNCTION_STATE, (procedure,))
    function = await cur.fetchone()
    if function is None:
        return f"the function {FUNCTION} is missing"
    body, definer, unset, language = function
    if body != FUNCTION_BODY or definer or not unset or language != "sql":
        return f"the function {FUNCTION} was changed"
    cur = await conn.execute(_TYPE_STATE, (CANONICAL_TYPE,))
    if [tuple(row) for row in await cur.fetchall()] != list(_TYPE_ATTRIBUTES):
        return f"the type {CANONICAL_TYPE} that {FUNCTION} renders with is missing or was changed"
    cur = await conn.execute(_PARTS)
    expected_depends = [await _regprocedure(conn, procedure)]
    for table, validated, definition, depends in await cur.fetchall():
        if validated is None:
            return f"{table} has no {CONSTRAINT} constraint"
        if not validated:
            return (f"{CONSTRAINT} on {table} is not validated (added NOT VALID, or events there "
                    "do not hash to their content_hash)")
        if definition != EXPECTED_DEFINITION or depends != expected_depends:
            return f"{CONSTRAINT} on {table} was changed"
    return None


async def _regprocedure(conn: psycopg.AsyncConnection[Any], procedure: str) -> str:
    cur = await conn.execute("SELECT to_regprocedure(%s)::text", (procedure,))
    row = await cur.fetchone()
    return str(row[0]) if row else ""
