"""``POST /mcp``: MCP over streamable HTTP on the gateway, the caller's bearer token required.

Stateless: every POST carries its token and is answered on its own (JSON, no session), so any
worker process can answer it and a revoked token is refused on the very next message. The tool
list is built per caller at request time (the low-level server), from the roles the token holds
now. Tool calls go through ``Gateway.call`` and ``Gateway.sql`` with ``client="mcp"``: the same
identity check, plan, masks, limits, detectors and audit event as any front door.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import mcp.types as types
import orjson
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from querygate import identity
from querygate.errors import BadParameters, NotAuthenticated, QuerygateError, Unavailable
from querygate.gateway import Gateway, adhoc_roles
from querygate.identity import Identity
from querygate.mcp import _tools

log = logging.getLogger("querygate.mcp")

PATH = "/mcp"
METADATA_PATH = "/.well-known/oauth-protected-resource"
_IDENTITY = "querygate.identity"  # the ASGI scope key the checked identity travels under


def token_of(headers: Any) -> str | None:
    scheme, _, token = str(headers.get("authorization", "")).partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _json(body: object, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json",
                    headers=headers)


def may_run_sql(gateway: Gateway, who: Identity) -> bool:
    """Whether any role the caller holds now (an agent: those it shares with its person) has
    ``adhoc: true``: the same test ``Gateway.sql`` applies."""
    return bool(adhoc_roles(who, dict(gateway.project.roles)))


def tools_for(gateway: Gateway, who: Identity) -> list[types.Tool]:
    max_chars = gateway.project.settings.max_param_chars
    tools = [_tools.function_tool(fn, gateway.plan_for(fn.name, who.roles).fields,
                                  max_chars=max_chars)
             for fn in gateway.callable_by(who)]
    if may_run_sql(gateway, who) and _tools.RUN_SQL not in gateway.functions:
        tools.append(_tools.run_sql_tool())
    return tools


async def call_tool(gateway: Gateway, token: str | None, name: str,
                    arguments: dict[str, Any] | None, client_addr: str | None,
                    ) -> types.CallToolResult:
    """One tool call through the gateway; every refusal becomes a tool error."""
    try:
        if name == _tools.RUN_SQL and name not in gateway.functions:
            params, reason = _tools.split_arguments(None, arguments)
            sql = params.pop("sql", None)
            if params:
                unknown = sorted(params)[0][:64]
                raise BadParameters(f"unknown argument {unknown!r}", parameter=unknown)
            result = await gateway.sql(token, sql, reason, client_addr, client="mcp")
        else:
            # an unknown or ungranted name is refused (and audited) by the gateway itself
            params, reason = _tools.split_arguments(gateway.functions.get(name), arguments)
            result = await gateway.call(token, name, params, reason, client_addr, client="mcp")
    except QuerygateError as exc:
        return _tools.failure(exc)
    except Exception as exc:  # its text may hold data: log the type only, as the API does
        log.error("unexpected %s in MCP tool %s", type(exc).__name__, name[:80])
        return _tools.failure(QuerygateError("internal error; see the gateway log"))
    return _tools.success(name, result)


class McpEndpoint:
    """The MCP server of one gateway: its routes, and ``running()`` for the app's lifespan."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.server: Server[Any] = Server("querygate", version=_tools.server_version(),
                                          instructions=_tools.INSTRUCTIONS,
                                          on_list_tools=self._list_tools,
                                          on_call_tool=self._call_tool)
        self.manager = StreamableHTTPSessionManager(self.server, stateless=True,
                                                    json_response=True)
        self._running = False

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with self.manager.run():
            self._running = True
            try:
                yield
            finally:
                self._running = False

    def routes(self) -> list[BaseRoute]:
        return [Route(PATH, endpoint=self),  # an ASGI app: every method goes to the transport
                Route(METADATA_PATH, endpoint=self._metadata, methods=["GET"]),
                Route(METADATA_PATH + PATH, endpoint=self._metadata, methods=["GET"])]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the bearer token (401 pointing at the resource metadata), then hand the
        message to the SDK's transport."""
        request = Request(scope, receive)
        if not self._running:
            response = _json(Unavailable("the MCP endpoint is not running: the app's lifespan "
                                         "did not start it").to_json(), 503)
            await response(scope, receive, send)
            return
        client_addr = request.client.host if request.client else None
        try:
            who = await self.gateway.authenticate(token_of(request.headers), function="-",
                                                  client_addr=client_addr, client="mcp")
        except NotAuthenticated as exc:
            await self._unauthorized(request, exc)(scope, receive, send)
            return
        except QuerygateError as exc:
            await _json(exc.to_json(), exc.status)(scope, receive, send)
            return
        scope[_IDENTITY] = who
        await self.manager.handle_request(scope, receive, send)

    def _unauthorized(self, request: Request, exc: NotAuthenticated) -> Response:
        challenge = f'Bearer resource_metadata="{_base(request)}{METADATA_PATH}{PATH}"'
        if token_of(request.headers) is not None:
            challenge += ', error="invalid_token"'
        return _json(exc.to_json(), 401, {"WWW-Authenticate": challenge})

    async def _metadata(self, request: Request) -> Response:
        """OAuth 2.0 Protected Resource Metadata (RFC 9728), as the MCP authorization spec
        asks: the resource, and the OIDC issuer whose access tokens it accepts. Without
        ``identity.oidc`` the list is empty: querygate's own tokens come from an admin
        (``querygate tokens issue``), not from an OAuth flow."""
        oidc = identity.oidc_settings(self.gateway.project)
        return _json({"resource": f"{_base(request)}{PATH}", "resource_name": "querygate",
                      "authorization_servers": [oidc.issuer] if oidc is not None else [],
                      "bearer_methods_supported": ["header"]}, 200)

    async def _list_tools(self, ctx: ServerRequestContext[Any, Any],
                          params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        who = _identity(ctx)
        return types.ListToolsResult(tools=tools_for(self.gateway, who), ttl_ms=0,
                                     cache_scope="private")

    async def _call_tool(self, ctx: ServerRequestContext[Any, Any],
                         params: types.CallToolRequestParams) -> types.CallToolResult:
        request = ctx.request
        if not isinstance(request, Request):  # never: this server is only mounted over HTTP
            raise NotAuthenticated("no HTTP request for this message")
        client_addr = request.client.host if request.client else None
        return await call_tool(self.gateway, token_of(request.headers), params.name,
                               params.arguments, client_addr)


def _identity(ctx: ServerRequestContext[Any, Any]) -> Identity:
    who = ctx.request.scope.get(_IDENTITY) if ctx.request is not None else None
    if not isinstance(who, Identity):  # never: every message passed the token check first
        raise NotAuthenticated("no checked caller for this message")
    return who


def _base(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"
