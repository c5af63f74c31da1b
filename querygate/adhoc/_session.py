"""Running a rewritten ad-hoc statement on a pooled connection, and proving it left no trace.

The statement runs in a transaction of its own, ``READ ONLY``, as ``querygate_adhoc`` with
``search_path`` set to ``pg_catalog``; the transaction is rolled back. Prepared statements,
LISTEN and temporary objects need statements of their own, which the parser never lets through
(one SELECT, generated from its syntax tree, sent through the extended protocol). What a
transaction cannot undo and a SELECT could still reach through a function (the settings a
later caller relies on, the role, advisory locks) is fingerprinted before the
connection's first ad-hoc statement and checked after every one: a connection whose
fingerprint changed is closed, never handed to the next caller.
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
# What a later caller depends on and a transaction cannot undo. Prepared statements, LISTEN and
# temporary objects need statements of their own, which never pass the parser.
_SETTINGS = ("search_path", "role", "session_authorization", "default_transaction_read_only",
             "default_transaction_isolation", "statement_timeout", "lock_timeout",
             "idle_in_transaction_session_timeout", "TimeZone", "DateStyle", "IntervalStyle",
             "client_encoding", "standard_conforming_strings", "bytea_output",
             "extra_float_digits", "application_name", "row_security", "work_mem",
             "max_parallel_workers_per_gather", "enable_seqscan", "jit")
_FINGERPRINT = ("SELECT pg_catalog.concat_ws('|', current_user, session_user, "
                + ", ".join(f"pg_catalog.current_setting('{name}')" for name in _SETTINGS)
                + ", (SELECT pg_catalog.count(*) FROM pg_catalog.pg_locks WHERE pid = "
                "pg_catalog.pg_backend_pid() AND locktype = 'advisory'))")

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
        cur = await conn.execute(f"ROLLBACK; {_FINGERPRINT}")  # one round trip
        row = await cur.fetchone() if cur.nextset() else None
        if row is not None and str(row[0]) == baseline:
            return
        log.warning("an ad-hoc statement left its connection changed; the connection is closed")
    except psycopg.Error:
        log.warning("an ad-hoc connection could not be proven clean; it is closed")
    await conn.close()
