"""What every route shares: JSON in and out, the bearer token, the front door's name, and one
place where errors become responses (``handle_errors``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response

from querygate.errors import BadParameters, ClientGone, NotAuthenticated, QuerygateError, TooLarge

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


def error_response(exc: QuerygateError) -> Response:
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


def handle_errors(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
    """Render every error in one place; nothing unexpected escapes as a 500 with details."""

    async def wrapped(request: Request) -> Response:
        try:
            response: Response = await handler(request)
            return response
        except NotAuthenticated as exc:
            response = error_response(exc)
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        except QuerygateError as exc:
            return error_response(exc)
        except Exception as exc:  # its text may hold data: log the type only
            log.error("unexpected %s in %s", type(exc).__name__, request.url.path)
            return json_response({"error": {"code": "internal",
                                            "message": "internal error; see the gateway log"}}, 500)

    return wrapped
