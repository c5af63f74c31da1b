"""The OpenAPI document: one typed operation per function."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from querygate.gateway import AnalysedFunction

_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "object", "properties": {
        "code": {"type": "string"}, "message": {"type": "string"}}}},
}
_ERRORS = {
    str(status): {"description": text, "content": {"application/json": {"schema": _ERROR}}}
    for status, text in [
        (401, "unknown, expired or revoked identity"),
        (403, "refused by policy (the body names the rule)"),
        (404, "no such function"),
        (413, "request body too large"),
        (422, "bad parameters (the body names the parameter)"),
        (429, "over a limit"),
        (502, "the database refused the query"),
        (503, "database or audit store unavailable; no data is returned"),
        (504, "statement timeout"),
    ]
}


def _operation(fn: AnalysedFunction, max_chars: int) -> dict[str, Any]:
    params = fn.function.parameters
    body = {
        "type": "object",
        "properties": {
            "params": {
                "type": "object",
                "properties": {p.name: p.json_schema(max_chars=max_chars) for p in params},
                "required": [p.name for p in params],
                "additionalProperties": False,
            },
            "reason": {"type": "string", "maxLength": 500},
        },
        "required": ["params"] if params else [],
        "additionalProperties": False,
    }
    row = {"type": "array", "items": {}}
    result = {
        "type": "object",
        "properties": {
            "columns": {"type": "array", "items": {"type": "string"}},
            "rows": {"type": "array", "items": row},
            "fields": {"type": "object", "additionalProperties": {"type": "string"}},
            "truncated": {"type": "boolean"},
            "audit_id": {"type": "string"},
            "receipt": {"type": "object"},
        },
    }
    return {
        "operationId": fn.name,
        "summary": fn.function.description or fn.name,
        "security": [{"bearer": []}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {"200": {"description": "rows, masked by policy",
                              "content": {"application/json": {"schema": result}}}, **_ERRORS},
    }


def openapi(functions: Iterable[AnalysedFunction], *, max_chars: int) -> dict[str, Any]:
    paths: dict[str, Any] = {
        f"/v1/call/{fn.name}": {"post": _operation(fn, max_chars)} for fn in functions
    }
    paths["/healthz"] = {"get": {"operationId": "healthz", "security": [],
                                 "responses": {"200": {"description": "the gateway is up"}}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "querygate", "version": "1"},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }
