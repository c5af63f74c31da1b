"""The HTTP API (docs/contracts.md, "HTTP API"): a Starlette app over one Gateway.

Its routes are listed in ``ROUTES``, one module per concern; each module's ``routes(gateway)``
returns Starlette routes whose handlers are wrapped in ``handle_errors``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from querygate.api import (
    _routes_access,
    _routes_alerts,
    _routes_audit,
    _routes_calls,
    _routes_console,
    _routes_ops,
    _routes_scim,
)
from querygate.gateway import Gateway

ROUTES: tuple[Callable[[Gateway], Sequence[BaseRoute]], ...] = (
    _routes_calls.routes,    # /v1/call, /v1/export, /v1/sql, /v1/functions, /openapi.json, /healthz
    _routes_access.routes,   # /v1/access/…: requests, approvals, break-glass, sign-in
    _routes_alerts.routes,   # /v1/alerts
    _routes_audit.routes,    # /v1/audit/…: search, subject, verify, reports
    _routes_console.routes,  # /console/ and / → /console/
    _routes_ops.routes,      # /metrics, /readyz
    _routes_scim.routes,     # /scim/v2/…
)


def create_app(gateway: Gateway, *, lifespan_close: bool = True) -> Starlette:
    """The ASGI app. When ``lifespan_close``, the gateway's pools close at shutdown."""
    from querygate.mcp import McpEndpoint  # the MCP SDK takes ~1 s to import: only when serving

    mcp = McpEndpoint(gateway)  # POST /mcp; its session manager runs for the app's lifespan

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with mcp.running():
            yield
        if lifespan_close:
            await gateway.close()

    routes: list[BaseRoute] = [*mcp.routes()]
    for build in ROUTES:
        routes += build(gateway)
    return Starlette(routes=routes, lifespan=lifespan)
