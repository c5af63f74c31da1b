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

The function body is written with schema-qualified functions and ``concat`` (no operators), so
no search_path a session sets can change what it computes; it is inlined into the constraint.
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


FUNCTION_BODY = f"SELECT pg_catalog.sha256(pg_catalog.convert_to({rendering()}, 'UTF8'))"
_SIGNATURE = ", ".join(kind for _, kind in FIELDS)
_ARGUMENTS = ", ".join(f"{name} {kind}" for name, kind in FIELDS)
# What pg_get_constraintdef shows for the constraint with search_path = pg_catalog.
EXPECTED_DEFINITION = (f"CHECK (COALESCE(({FUNCTION}({', '.join(COLUMN_NAMES)}) = content_hash), "
                       "false))")


def install(conn: psycopg.Connection[Any]) -> list[str]:
    """Create or refresh the function and, where the store can hold it, add the constraint
    ``NOT VALID`` (new rows are held to it at once); run as the owner role inside setup's
    transaction. ``validate`` then checks the rows already there, in a transaction of its
    own. Returns what was done, for setup to print."""
    conn.execute(f"CREATE OR REPLACE FUNCTION {FUNCTION}({_ARGUMENTS}) RETURNS bytea "
                 f"LANGUAGE sql STABLE PARALLEL SAFE AS $querygate${FUNCTION_BODY}$querygate$")
    if _validated(conn) is not None:
        return []
    kinds = conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
        "'querygate.audit_events'::regclass AND attname = ANY(%s)",
        (["parameters", "fields", "subjects", "context"],)).fetchall()
    if any(kind != "json" for _, kind in kinds):
        return ["left the audit log without its content constraint: its documents are jsonb (a "
                "store from before the json layout), so `audit verify` walks it in full"]
    columns = ", ".join(COLUMN_NAMES)
    conn.execute(f"ALTER TABLE querygate.audit_events ADD CONSTRAINT {CONSTRAINT} CHECK "
                 f"(coalesce({FUNCTION}({columns}) = content_hash, false)) NOT VALID")
    return [f"added {CONSTRAINT}: every new audit event must hash to its content_hash"]


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
