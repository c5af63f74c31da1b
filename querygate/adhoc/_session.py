"""Running a rewritten ad-hoc statement on a pooled connection, and proving it left no trace.

The statement runs in a transaction of its own, ``READ ONLY``, as ``querygate_adhoc`` with
``search_path`` set to ``pg_catalog``; the transaction is rolled back. What a transaction
cannot undo (session settings, advisory locks, prepared statements, temporary objects, LISTEN)
is fingerprinted before the connection's first ad-hoc statement and checked after every one:
a connection whose fingerprint changed is closed, never handed to the next caller.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

import psycopg

from querygate import execute

log = logging.getLogger("querygate.adhoc")

_BEGIN = ("BEGIN READ ONLY; SET LOCAL ROLE querygate_adhoc; "
          "SET LOCAL search_path = pg_catalog, pg_temp")
_FINGERPRINT = """SELECT pg_catalog.md5(pg_catalog.concat_ws('|', current_user, session_user,
  (SELECT pg_catalog.string_agg(name || '=' || setting, ',' ORDER BY name)
   FROM pg_catalog.pg_settings WHERE source = 'session'),
  (SELECT pg_catalog.count(*) FROM pg_catalog.pg_locks
   WHERE pid = pg_catalog.pg_backend_pid() AND locktype = 'advisory'),
  (SELECT pg_catalog.count(*) FROM pg_catalog.pg_prepared_statements WHERE from_sql),
  (SELECT pg_catalog.count(*) FROM pg_catalog.pg_listening_channels()),
  (SELECT pg_catalog.count(*) FROM pg_catalog.pg_class
   WHERE relnamespace = pg_catalog.pg_my_temp_schema())))"""

_clean: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


async def _fingerprint(conn: psycopg.AsyncConnection[Any]) -> str:
    row = await (await conn.execute(_FINGERPRINT)).fetchone()
    return str(row[0]) if row else ""


async def run_adhoc(conn: psycopg.AsyncConnection[Any], sql: str, *, max_rows: int,
                    label: str | None) -> execute.Result:
    """Run ``sql`` as the ad-hoc role in a rolled-back read-only transaction."""
    baseline = _clean.get(conn)
    if baseline is None:
        baseline = _clean[conn] = await _fingerprint(conn)
    try:
        await conn.execute(_BEGIN)
        # an empty mapping of parameters: the extended protocol, which runs one statement only
        return await execute.run(conn, sql.replace("%", "%%"), {}, max_rows=max_rows,
                                 label=label)
    finally:
        await _end(conn, baseline)


async def _end(conn: psycopg.AsyncConnection[Any], baseline: str) -> None:
    try:
        await conn.execute("ROLLBACK")
        if await _fingerprint(conn) == baseline:
            return
        log.warning("an ad-hoc statement left its connection changed; the connection is closed")
    except psycopg.Error:
        log.warning("an ad-hoc connection could not be proven clean; it is closed")
    await conn.close()
