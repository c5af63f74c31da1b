"""Writing to the directory from a connection whose transactions default to READ ONLY."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import psycopg


@contextlib.asynccontextmanager
async def writing(conn: psycopg.AsyncConnection[Any]) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """One read-write transaction, committed on exit.

    The gateway's query pool opens every transaction READ ONLY; the identity
    directory lives in the same database, so a write first ends any open
    transaction, then marks the new one READ WRITE before its first statement.
    The next transaction on the connection is READ ONLY again.
    """
    if not conn.autocommit:
        await conn.commit()
    async with conn.transaction():
        await conn.execute("SET TRANSACTION READ WRITE")
        yield conn
