"""Just-in-time elevation over HTTP: request, approve, deny, cancel, list, break-glass.

Every step is audited (refusals too). A step that creates a grant (approval,
break-glass) is undone when its audit event cannot be written: no elevation
exists without its record.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from querygate import identity
from querygate.api._http import bearer_token, handle_errors, json_response, read_json
from querygate.errors import AuditUnavailable, NotFound, QuerygateError
from querygate.gateway import Gateway
from querygate.identity import AccessRequest, Identity, writing

log = logging.getLogger("querygate.identity")
_REQUEST_KEYS = frozenset({"role", "duration", "reason", "functions", "params"})
_DECIDE_KEYS = frozenset({"note", "functions", "params"})
_GLASS_KEYS = frozenset({"role", "reason", "duration"})


def _context(request: AccessRequest) -> dict[str, str]:
    context = {"access_request": request.id, "role": request.role, "requester": request.email,
               "status": request.status}
    if request.expires_at:
        context["expires_at"] = request.expires_at.isoformat()
    if request.break_glass:
        context["break_glass"] = "true"
    return context


def routes(gateway: Gateway) -> list[Route]:
    settings = identity.identity_settings(gateway.project).access
    project = gateway.project

    async def step(request: Request, action: str, who: Identity,
                   work: Callable[[Any], Awaitable[AccessRequest]], *,
                   grants: bool = False, status: int = 200,
                   request_id: str | None = None) -> Response:
        """Run one step on a directory connection and audit it, allowed or refused."""
        client = request.client.host if request.client else None
        try:
            async with gateway.directory() as conn:
                result = await work(conn)
        except QuerygateError as exc:
            await gateway.record(identity.identity_event(
                action, actor=who, decision="denied" if exc.status < 500 else "error",
                error_code=exc.code, client_addr=client,
                context={"access_request": request_id[:64]} if request_id else None))
            raise
        event = identity.identity_event(action, actor=who, reason=result.reason,
                                        context=_context(result), client_addr=client)
        try:
            receipt = await gateway.record(event)
        except AuditUnavailable:
            if grants:  # no elevation without its record
                async with gateway.directory() as conn, writing(conn):
                    await identity.revoke_grants(conn, result.user_id, "audit_unavailable",
                                                 request_id=result.id)
            raise
        return json_response({"request": result.to_json(), "audit_id": receipt.event_id}, status)

    async def who_is(request: Request) -> Identity:
        return await gateway.authenticate(bearer_token(request))

    async def create(request: Request) -> Response:
        who = await who_is(request)
        body = await read_json(request, 65536, _REQUEST_KEYS)
        scope = identity.scope_from(body.get("functions"), body.get("params"))
        return await step(request, "access.request", who, lambda conn: identity.request_access(
            conn, who, project, settings, role=body.get("role"), duration=body.get("duration"),
            reason=body.get("reason"), scope=scope), status=201)

    async def decide(request: Request, approve: bool) -> Response:
        who = await who_is(request)
        body = await read_json(request, 65536, _DECIDE_KEYS)
        scope = (identity.scope_from(body.get("functions"), body.get("params"))
                 if "functions" in body or "params" in body else None)
        request_id = request.path_params["id"]
        return await step(request, "access.approve" if approve else "access.deny", who,
                          lambda conn: identity.decide(
                              conn, who, project, settings, request_id, approve=approve,
                              note=body.get("note") if isinstance(body.get("note"), str) else None,
                              scope=scope), grants=approve, request_id=request_id)

    async def approve(request: Request) -> Response:
        return await decide(request, True)

    async def deny(request: Request) -> Response:
        return await decide(request, False)

    async def cancel(request: Request) -> Response:
        who = await who_is(request)
        request_id = request.path_params["id"]
        return await step(request, "access.cancel", who,
                          lambda conn: identity.cancel(conn, who, request_id), request_id=request_id)

    async def break_glass(request: Request) -> Response:
        who = await who_is(request)
        body = await read_json(request, 65536, _GLASS_KEYS)
        response = await step(request, "access.break_glass", who, lambda conn: identity.break_glass(
            conn, who, project, settings, role=body.get("role"), reason=body.get("reason"),
            duration=body.get("duration")), grants=True, status=201)
        log.warning("BREAK-GLASS: %s took role %s", who.email, body.get("role"))
        return response

    async def listing(request: Request) -> Response:
        who = await who_is(request)
        async with gateway.directory() as conn:
            found = await identity.list_requests(conn, who, project)
        return json_response({"requests": [r.to_json() for r in found], "user": who.email})

    async def one(request: Request) -> Response:
        who = await who_is(request)
        async with gateway.directory() as conn:
            found = await identity.get_request(conn, request.path_params["id"])
        mine = found.user_id == who.user_id
        if not mine and found.id not in {r.id for r in await _decidable(gateway, who)}:
            raise NotFound(f"no access request {found.id} that you made or may decide")
        return json_response({"request": found.to_json()})

    return [
        Route("/v1/access/requests", handle_errors(create), methods=["POST"]),
        Route("/v1/access/requests", handle_errors(listing), methods=["GET"]),
        Route("/v1/access/requests/{id}", handle_errors(one), methods=["GET"]),
        Route("/v1/access/requests/{id}/approve", handle_errors(approve), methods=["POST"]),
        Route("/v1/access/requests/{id}/deny", handle_errors(deny), methods=["POST"]),
        Route("/v1/access/requests/{id}/cancel", handle_errors(cancel), methods=["POST"]),
        Route("/v1/access/break-glass", handle_errors(break_glass), methods=["POST"]),
    ]


async def _decidable(gateway: Gateway, who: Identity) -> list[AccessRequest]:
    async with gateway.directory() as conn:
        return await identity.list_requests(conn, who, gateway.project)
