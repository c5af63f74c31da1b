"""SCIM 2.0 for identity providers: ``/scim/v2/Users`` and ``/scim/v2/Groups``.

Protected by the bearer token of ``identity.scim.token`` (compared in constant
time). Errors use SCIM's own body (RFC 7644 §3.12). Every change is audited
as ``querygate.scim.*``; deactivation and deletion revoke the person at once,
in every gateway process, because the revocation lives in PostgreSQL.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from querygate import identity
from querygate.api._http import bearer_token, handle_errors
from querygate.errors import QuerygateError
from querygate.gateway import Gateway
from querygate.scim import Changes, ScimDirectory, ScimError

MEDIA = "application/scim+json"
MAX_BODY = 1_048_576
Handler = Callable[[Request], Awaitable[Response]]


def scim_response(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=MEDIA)


def _service_config() -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": True}, "bulk": {"supported": False, "maxOperations": 0,
                                               "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": 200},
        "changePassword": {"supported": False}, "sort": {"supported": False},
        "etag": {"supported": False},
        "authenticationSchemes": [{"type": "oauthbearertoken", "name": "Bearer token",
                                   "description": "identity.scim.token in querygate.yaml"}],
    }


async def _body(request: Request) -> dict[str, Any]:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise ScimError(413, f"request body larger than {MAX_BODY} bytes")
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        raise ScimError(400, "the request body is not valid JSON", "invalidSyntax") from None
    if not isinstance(body, dict):
        raise ScimError(400, "the request body must be a JSON object", "invalidSyntax")
    return body


def routes(gateway: Gateway) -> list[Route]:
    settings = identity.identity_settings(gateway.project).scim
    directory = ScimDirectory(settings) if settings else None

    def scim(handler: Callable[[Request, ScimDirectory, Changes], Awaitable[Response]]) -> Handler:
        async def wrapped(request: Request) -> Response:
            try:
                if directory is None or settings is None:
                    raise ScimError(404, "SCIM is not enabled; set identity.scim in querygate.yaml")
                token = bearer_token(request) or ""
                if not hmac.compare_digest(token.encode(), settings.token.encode()):
                    raise ScimError(401, "a valid SCIM bearer token is required")
                changes = Changes()
                response = await handler(request, directory, changes)
                await _audit(request, changes)
                return response
            except ScimError as exc:
                return scim_response(exc.to_json(), exc.status)
            except QuerygateError as exc:
                return scim_response(ScimError(exc.status, exc.message).to_json(), exc.status)

        return handle_errors(wrapped)

    async def _audit(request: Request, changes: Changes) -> None:
        client = request.client.host if request.client else None
        for action, context in changes.actions:
            await gateway.record(identity.identity_event(
                action, actor_label="scim", context=context, client_addr=client))

    async def users(request: Request, d: ScimDirectory, changes: Changes) -> Response:
        async with gateway.directory() as conn:
            if request.method == "POST":
                return scim_response(await d.create_user(conn, await _body(request), changes), 201)
            return scim_response(await d.list_users(conn, request.query_params))

    async def user(request: Request, d: ScimDirectory, changes: Changes) -> Response:
        user_id = request.path_params["id"]
        async with gateway.directory() as conn:
            if request.method == "GET":
                return scim_response(await d.get_user(conn, user_id))
            if request.method == "DELETE":
                await d.delete_user(conn, user_id, changes)
                return Response(status_code=204)
            body = await _body(request)
            if request.method == "PUT":
                return scim_response(await d.replace_user(conn, user_id, body, changes))
            return scim_response(await d.patch_user(conn, user_id, body, changes))

    async def groups(request: Request, d: ScimDirectory, changes: Changes) -> Response:
        async with gateway.directory() as conn:
            if request.method == "POST":
                return scim_response(await d.create_group(conn, await _body(request), changes), 201)
            return scim_response(await d.list_groups(conn, request.query_params))

    async def group(request: Request, d: ScimDirectory, changes: Changes) -> Response:
        group_id = request.path_params["id"]
        async with gateway.directory() as conn:
            if request.method == "GET":
                members = "members" not in request.query_params.get("excludedAttributes", "")
                return scim_response(await d.get_group(conn, group_id, members))
            if request.method == "DELETE":
                await d.delete_group(conn, group_id, changes)
                return Response(status_code=204)
            body = await _body(request)
            if request.method == "PUT":
                return scim_response(await d.replace_group(conn, group_id, body, changes))
            return scim_response(await d.patch_group(conn, group_id, body, changes))

    async def config(request: Request, d: ScimDirectory, changes: Changes) -> Response:
        return scim_response(_service_config())

    one = ["GET", "PUT", "PATCH", "DELETE"]
    return [
        Route("/scim/v2/ServiceProviderConfig", scim(config), methods=["GET"]),
        Route("/scim/v2/Users", scim(users), methods=["GET", "POST"]),
        Route("/scim/v2/Users/{id}", scim(user), methods=one),
        Route("/scim/v2/Groups", scim(groups), methods=["GET", "POST"]),
        Route("/scim/v2/Groups/{id}", scim(group), methods=one),
    ]
