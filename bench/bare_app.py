"""The *bare endpoint*: the smallest ASGI app that takes the same JSON call, runs the same SELECT
through the same kind of pool and returns JSON, with no identity, policy, masking or audit.

This is how most Python services are written (Starlette on uvicorn with uvloop and httptools),
and it is what querygate is compared against.
Run: python bench/bare_app.py DSN PORT [LOOP HTTP]   (default: uvloop httptools)
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

import orjson
import uvicorn
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

QUERIES = {
    "get_customer_by_id": "SELECT * FROM customers WHERE id = %(customer_id)s",
    "list_orders_page": "SELECT o.id, o.customer_id, o.amount, o.status, o.created_at "
                        "FROM orders o WHERE o.id > %(after)s ORDER BY o.id LIMIT 100",
    "export_orders": "SELECT o.id, o.customer_id, o.amount, o.status, c.email, c.iban "
                     "FROM orders o JOIN customers c ON c.id = o.customer_id "
                     "ORDER BY o.id LIMIT %(n)s",
}


def build(dsn: str) -> Starlette:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(dsn, min_size=4, max_size=10,
                                                         open=False)

    async def call(request: Request) -> Response:
        body = orjson.loads(await request.body())
        async with pool.connection() as conn:
            cur = await conn.execute(QUERIES[request.path_params["name"]], body["params"])
            rows = await cur.fetchall()
            columns = [c.name for c in cur.description or ()]
        return Response(orjson.dumps({"columns": columns, "rows": rows}, default=str),
                        media_type="application/json")

    async def export(request: Request) -> Response:
        body = orjson.loads(await request.body())

        async def lines() -> AsyncIterator[bytes]:
            async with pool.connection() as conn, conn.transaction(), \
                    conn.cursor(name="bare_export") as cur:
                await cur.execute(QUERIES[request.path_params["name"]], body["params"])
                while chunk := await cur.fetchmany(5000):
                    yield b"".join(orjson.dumps(r, default=str) + b"\n" for r in chunk)

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await pool.open(wait=True)
        yield
        await pool.close()

    return Starlette(routes=[Route("/call/{name}", call, methods=["POST"]),
                             Route("/export/{name}", export, methods=["POST"])],
                     lifespan=lifespan)


if __name__ == "__main__":
    loop, http = (sys.argv[3], sys.argv[4]) if len(sys.argv) > 4 else ("uvloop", "httptools")
    uvicorn.run(build(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), loop=loop,  # type: ignore[arg-type]
                http=http, log_level="warning", access_log=False)  # type: ignore[arg-type]
