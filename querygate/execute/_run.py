"""Running one function: a READ ONLY transaction, parameters bound server-side, a row cap."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors as pgerr
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from querygate.errors import QuerygateError, StatementTimeout, Unavailable, UpstreamError
from querygate.execute._pool import busy


@dataclass(frozen=True)
class Result:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool
    origins: list[tuple[int, int]]  # (table oid, attribute number) PostgreSQL reports per column


def upstream_error(exc: psycopg.Error) -> QuerygateError:
    """A PostgreSQL failure as a fixed message chosen by SQLSTATE; the server's text is dropped."""
    state = exc.sqlstate or ""
    if isinstance(exc, pgerr.QueryCanceled):
        return StatementTimeout("the query ran past statement_timeout and was cancelled")
    if isinstance(exc, psycopg.OperationalError) and not state:
        return Unavailable("the database cannot be reached; try again shortly")
    if state.startswith(("08", "57P", "53")):
        return Unavailable(f"the database is unavailable (SQLSTATE {state}); try again shortly")
    if state.startswith("22"):
        return UpstreamError(f"a parameter value was rejected by the database (SQLSTATE {state})",
                             sqlstate=state)
    if state.startswith("42"):
        return UpstreamError(
            f"the function no longer matches the database schema (SQLSTATE {state}); "
            "run `querygate check`", sqlstate=state)
    return UpstreamError(f"the database refused the query (SQLSTATE {state or 'unknown'})",
                         sqlstate=state or None)


_SAFE_LABEL = re.compile(r"[A-Za-z0-9_:/.-]{1,120}")


def labelled(sql: str, label: str | None) -> str:
    """The SQL with a leading comment naming the caller, as pg_stat_activity shows it, so an
    offboarding can find and cancel the person's running queries. Costs no round trip."""
    if label is None:
        return sql
    if not _SAFE_LABEL.fullmatch(label):
        raise ValueError(f"unsafe query label {label!r}")
    return f"/* {label} */ {sql}"


def _shape(cur: psycopg.AsyncCursor[Any]) -> tuple[list[str], list[tuple[int, int]]]:
    """The result's column names and, per column, the (table oid, attribute number) PostgreSQL
    reports; read from the result itself (``description`` builds a Column object per column)."""
    res = cur.pgresult
    if res is None:
        return [], []
    encoding = cur.connection.info.encoding
    indexes = range(res.nfields)
    columns = [(res.fname(i) or b"").decode(encoding) or f"column_{i + 1}" for i in indexes]
    return columns, [(res.ftable(i), res.ftablecol(i)) for i in indexes]


async def run(conn: psycopg.AsyncConnection[Any], sql: str, params: dict[str, object],
              *, max_rows: int, prepare: bool | None = None, label: str | None = None) -> Result:
    """Run a function's SQL on a query connection; rows past ``max_rows`` are not fetched.

    ``prepare=True`` forces the extended protocol, where PostgreSQL itself refuses
    more than one statement (used for ad-hoc SQL). ``label`` names the caller (see
    ``labelled``).
    """
    sql = labelled(sql, label)
    try:
        async with conn.cursor() as cur:
            await cur.execute(sql, params, prepare=prepare)
            rows = await cur.fetchmany(max_rows + 1)
            columns, origins = _shape(cur)
    except psycopg.Error as exc:
        raise upstream_error(exc) from None
    return Result(columns, rows[:max_rows], len(rows) > max_rows, origins)


async def stream(pool: AsyncConnectionPool[Any], sql: str, params: dict[str, object],
                 *, max_rows: int, timeout_s: float, chunk: int = 5000,
                 label: str | None = None) -> AsyncIterator[Result]:
    """Run a function's SQL through a server-side cursor, ``chunk`` rows at a time.

    Memory stays flat whatever the result's size; the last chunk says whether rows past
    ``max_rows`` were left unread.
    """
    try:
        async with pool.connection(timeout=timeout_s) as conn, conn.transaction(), \
                conn.cursor(name="querygate_stream") as cur:
            await cur.execute(labelled(sql, label), params)
            columns, origins = _shape(cur)
            left, want = max_rows, min(chunk, max_rows + 1)
            fetch = asyncio.ensure_future(cur.fetchmany(want))
            try:
                while True:
                    rows = await fetch
                    kept = rows[:left]
                    left -= len(kept)
                    last = len(rows) > len(kept) or len(rows) < want
                    if not last:  # the server reads the next chunk while this one is masked
                        want = min(chunk, left + 1)
                        fetch = asyncio.ensure_future(cur.fetchmany(want))
                        await asyncio.sleep(0)
                    yield Result(columns, kept, len(rows) > len(kept), origins)
                    if last:
                        break
            finally:
                if not fetch.done():  # the caller stopped early: cancel the read in flight
                    fetch.cancel()
                    await asyncio.gather(fetch, return_exceptions=True)
    except PoolTimeout:
        raise busy() from None
    except psycopg.Error as exc:
        raise upstream_error(exc) from None


async def describe(conn: psycopg.AsyncConnection[Any], sql: str,
                   parameters: list[str]) -> list[str]:
    """The output column names of a function's SQL, without reading a row."""
    async with conn.transaction(force_rollback=True), conn.cursor() as cur:
        await cur.execute(f"SELECT * FROM ({sql}) AS querygate_describe LIMIT 0",
                          dict.fromkeys(parameters))
        return [c.name for c in cur.description or ()]
