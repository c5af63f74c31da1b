"""The HTTP API (docs/contracts.md, "HTTP API"): a Starlette app over one Gateway."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import IO, Any, TypeVar

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from querygate._plugins import modules
from querygate.api._openapi import openapi
from querygate.errors import BadParameters, ClientGone, NotAuthenticated, QuerygateError
from querygate.gateway import Gateway
from querygate.results import CallResult

log = logging.getLogger("querygate.api")
T = TypeVar("T")


def _default(value: object) -> object:
    return str(value)


def json_response(body: object, status: int = 200) -> Response:
    content = orjson.dumps(body, default=_default, option=orjson.OPT_NON_STR_KEYS)
    return Response(content, status_code=status, media_type="application/json")


async def until_disconnected(request: Request, work: Coroutine[Any, Any, T],
                             *, watch_after_s: float = 0.05) -> T:
    """Run ``work`` in this task; if the client disconnects first, cancel it (psycopg then
    cancels the query in the server) and answer nobody.

    The watcher task starts only once the call has run ``watch_after_s``: most calls are done
    by then, and a task per call cost more than the rest of the handler. A client gone
    earlier is noticed as the watcher starts."""
    handler = asyncio.current_task()
    assert handler is not None
    gone = False
    watcher: asyncio.Task[None] | None = None

    async def watch() -> None:
        nonlocal gone
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone = True
        handler.cancel()

    def start() -> None:
        nonlocal watcher
        watcher = asyncio.create_task(watch())

    timer = asyncio.get_running_loop().call_later(watch_after_s, start)
    try:
        return await work
    except asyncio.CancelledError:
        if gone:
            raise ClientGone("the client disconnected; the query was cancelled") from None
        raise
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.cancel()


async def _lines(header: bytes, rows: IO[bytes]) -> AsyncIterator[bytes]:
    """The header line, then the spooled rows in 64 KiB chunks; the spool is closed at the end
    (also when the client goes away)."""
    try:
        yield header
        while chunk := rows.read(65536):
            yield chunk
    finally:
        rows.close()


def _result(result: CallResult) -> Response:
    return json_response({
        "columns": result.columns, "rows": result.rows, "fields": result.fields,
        "truncated": result.truncated, "audit_id": result.receipt.event_id,
        "receipt": {"seq": result.receipt.seq, "hash": result.receipt.hash},
    })


def _error(exc: QuerygateError) -> Response:
    return json_response(exc.to_json(), exc.status)


def front_door(request: Request) -> str:
    """The audit event's ``client``: ``cli`` when querygate's own command line says so."""
    return "cli" if request.headers.get("x-querygate-client") == "cli" else "http"


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


async def read_json(request: Request, limit: int,
                    allowed: frozenset[str] = frozenset({"params", "reason"})) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise TooLarge(f"request body larger than {limit} bytes")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise TooLarge(f"request body larger than {limit} bytes")
    if not raw:
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadParameters("the request body is not valid JSON (UTF-8, no NaN)") from None
    if not isinstance(body, dict):
        raise BadParameters("the request body must be a JSON object")
    unknown = set(body) - allowed
    if unknown:
        raise BadParameters(f"unknown field {sorted(unknown)[0][:64]!r} in the request body")
    return body


class TooLarge(QuerygateError):
    status = 413
    code = "too_large"


def create_app(gateway: Gateway, *, lifespan_close: bool = True) -> Starlette:
    """The ASGI app. When ``lifespan_close``, the gateway's pools close at shutdown."""

    async def call(request: Request) -> Response:
        function = request.path_params["function"]
        body = await read_json(request, gateway.project.settings.max_request_bytes)
        client = request.client.host if request.client else None
        result = await until_disconnected(request, gateway.call(
            bearer_token(request), function, body.get("params"), body.get("reason"), client,
            client=front_door(request)))
        return _result(result)

    async def export(request: Request) -> Response:
        function = request.path_params["function"]
        body = await read_json(request, gateway.project.settings.max_request_bytes)
        client = request.client.host if request.client else None
        result = await gateway.export(bearer_token(request), function, body.get("params"),
                                      body.get("reason"), client, client=front_door(request))
        header = {"columns": result.columns, "fields": result.fields, "rows": result.rows,
                  "truncated": result.truncated, "audit_id": result.receipt.event_id,
                  "receipt": {"seq": result.receipt.seq, "hash": result.receipt.hash}}
        return StreamingResponse(_lines(orjson.dumps(header) + b"\n", result.rows_file),
                                 media_type="application/x-ndjson")

    async def adhoc(request: Request) -> Response:
        body = await read_json(request, gateway.project.settings.max_request_bytes,
                               frozenset({"sql", "reason"}))
        client = request.client.host if request.client else None
        result = await until_disconnected(request, gateway.sql(
            bearer_token(request), body.get("sql"), body.get("reason"), client,
            client=front_door(request)))
        return _result(result)

    async def functions(request: Request) -> Response:
        who = await gateway.authenticate(bearer_token(request), function="-",
                                         client_addr=request.client.host if request.client
                                         else None, client=front_door(request))
        listed = []
        for fn in gateway.callable_by(who):
            listed.append({
                "name": fn.name,
                "description": fn.function.description,
                "parameters": [{"name": p.name, "type": p.type,
                                "schema": p.json_schema(
                                    max_chars=gateway.project.settings.max_param_chars)}
                               for p in fn.function.parameters],
                "fields": gateway.plan_for(fn.name, who.roles).fields,
            })
        return json_response({"functions": listed, "user": who.email, "roles": list(who.roles)})

    async def openapi_json(request: Request) -> Response:
        return json_response(openapi(gateway.functions.values(),
                                     max_chars=gateway.project.settings.max_param_chars))

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    from querygate.mcp import McpEndpoint  # the MCP SDK takes ~1 s to import: only when serving

    mcp = McpEndpoint(gateway)  # POST /mcp; its session manager runs for the app's lifespan

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with mcp.running():
            yield
        if lifespan_close:
            await gateway.close()

    routes = [
        Route("/v1/call/{function}", handle_errors(call), methods=["POST"]),
        Route("/v1/export/{function}", handle_errors(export), methods=["POST"]),
        Route("/v1/sql", handle_errors(adhoc), methods=["POST"]),
        Route("/v1/functions", handle_errors(functions), methods=["GET"]),
        Route("/openapi.json", handle_errors(openapi_json), methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        *mcp.routes(),
    ]
    for module in modules("querygate.api", "_routes_"):
        routes += module.routes(gateway)
    return Starlette(routes=routes, lifespan=lifespan)


def handle_errors(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
    """Render every error in one place; nothing unexpected escapes as a 500 with details."""

    async def wrapped(request: Request) -> Response:
        try:
            response: Response = await handler(request)
            return response
        except NotAuthenticated as exc:
            response = _error(exc)
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        except QuerygateError as exc:
            return _error(exc)
        except Exception as exc:  # its text may hold data: log the type only
            log.error("unexpected %s in %s", type(exc).__name__, request.url.path)
            return json_response({"error": {"code": "internal",
                                            "message": "internal error; see the gateway log"}}, 500)

    return wrapped
