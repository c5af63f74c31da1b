"""The *bare endpoint*: the smallest ASGI app that takes the same JSON call, runs the same SELECT
through the same kind of pool and returns JSON, with no identity, policy, masking or audit.

This is how most Python services are written (Starlette on uvicorn with uvloop and httptools),
and it is what querygate is compared against. Routes:

- ``POST /call/NAME`` with ``{"params": {...}}``: one of QUERIES, all rows as JSON
- ``POST /export/NAME``: the same, streamed as NDJSON from a server-side cursor
- ``POST /sql`` with ``{"sql": "..."}``: the statement as given (the ad-hoc equivalent)
"""

from __future__ import annotations

import argparse
import contextlib
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
    "list_customers_page": "SELECT c.id, c.full_name, c.email, c.phone, c.iban, "
                           "c.date_of_birth, c.country FROM customers c WHERE c.id > %(after)s "
                           "ORDER BY c.id LIMIT 50",
    "export_orders": "SELECT o.id, o.customer_id, o.amount, o.status, c.email, c.iban "
                     "FROM orders o JOIN customers c ON c.id = o.customer_id "
                     "ORDER BY o.id LIMIT %(n)s",
}


def _json(rows: list[Any], columns: list[str]) -> Response:
    return Response(orjson.dumps({"columns": columns, "rows": rows}, default=str),
                    media_type="application/json")


def build(dsn: str) -> Starlette:
    """The app, with a pool of 4 to 10 connections to ``dsn`` (the gateway's pool sizes)."""
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        dsn, min_size=4, max_size=10, open=False, kwargs={"application_name": "bare"})

    async def run(sql: str, params: dict[str, Any] | None) -> Response:
        async with pool.connection() as conn:
            cur = await conn.execute(sql, params)
            rows = await cur.fetchall()
            return _json(rows, [c.name for c in cur.description or ()])

    async def call(request: Request) -> Response:
        body = orjson.loads(await request.body())
        return await run(QUERIES[request.path_params["name"]], body["params"])

    async def adhoc(request: Request) -> Response:
        return await run(orjson.loads(await request.body())["sql"], None)

    async def export(request: Request) -> Response:
        body = orjson.loads(await request.body())

        async def lines() -> AsyncIterator[bytes]:
            async with pool.connection() as conn, conn.transaction(), \
                    conn.cursor(name="bare_export") as cur:
                await cur.execute(QUERIES[request.path_params["name"]], body["params"])
                while chunk := await cur.fetchmany(5000):
                    yield b"".join(orjson.dumps(r, default=str) + b"\n" for r in chunk)

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    async def ready(request: Request) -> Response:
        return Response(b"ok")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await pool.open(wait=True)
        yield
        await pool.close()

    return Starlette(routes=[Route("/", ready), Route("/call/{name}", call, methods=["POST"]),
                             Route("/sql", adhoc, methods=["POST"]),
                             Route("/export/{name}", export, methods=["POST"])],
                     lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.harness.bare", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dsn", help="PostgreSQL URL the endpoint queries (the gateway's role)")
    parser.add_argument("port", type=int, help="port on 127.0.0.1")
    parser.add_argument("loop", nargs="?", default="uvloop", choices=["uvloop", "asyncio"])
    parser.add_argument("http", nargs="?", default="httptools", choices=["httptools", "h11"])
    args = parser.parse_args()
    uvicorn.run(build(args.dsn), host="127.0.0.1", port=args.port, loop=args.loop,
                http=args.http, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
