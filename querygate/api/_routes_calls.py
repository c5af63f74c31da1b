"""Calls: ``/v1/call``, ``/v1/export``, ``/v1/sql``, ``/v1/functions``, ``/openapi.json`` and
``/healthz``. Each hands its request to the gateway and renders what comes back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import IO

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from querygate.api._http import (
    bearer_token,
    front_door,
    handle_errors,
    json_response,
    read_json,
    until_disconnected,
)
from querygate.api._openapi import openapi
from querygate.gateway import CallResult, Gateway


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


def routes(gateway: Gateway) -> list[BaseRoute]:
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

    return [
        Route("/v1/call/{function}", handle_errors(call), methods=["POST"]),
        Route("/v1/export/{function}", handle_errors(export), methods=["POST"]),
        Route("/v1/sql", handle_errors(adhoc), methods=["POST"]),
        Route("/v1/functions", handle_errors(functions), methods=["GET"]),
        Route("/openapi.json", handle_errors(openapi_json), methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
