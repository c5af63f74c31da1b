"""The console as one ASGI app mounted at ``/console``, and ``/`` sent there."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from querygate.console import _alerts, _audit, _auth, _calls, _people
from querygate.console._sessions import COOKIE
from querygate.console._web import Console, SecurityHeaders
from querygate.errors import NotFound
from querygate.gateway import Gateway


def console_app(gateway: Gateway) -> Starlette:
    """Every console page, its static files, and the security headers on all of them."""
    console = Console(gateway)

    async def home(request: Request) -> Response:
        signed_in = console.sessions.get(request.cookies.get(COOKIE)) is not None
        return RedirectResponse("/console/functions" if signed_in else "/console/login",
                                status_code=303)

    routes: list[BaseRoute] = [
        Route("/", home, methods=["GET"]),
        Mount("/static", app=StaticFiles(packages=[("querygate.console", "static")]),
              name="static"),
    ]
    for module in (_auth, _calls, _audit, _alerts, _people):
        routes += module.routes(console)

    async def not_found(request: Request, exc: Exception) -> Response:
        return console.render("error.html", None, 404, error=NotFound(
            "there is no such page in the console; start again from its front page"))

    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)],
                    exception_handlers={404: not_found})
    app.state.console = console
    return app


def console_routes(gateway: Gateway) -> list[BaseRoute]:
    """``/console/…``, and ``/`` redirecting to it: what the HTTP API mounts."""

    async def root(request: Request) -> Response:
        return RedirectResponse("/console/", status_code=303)

    return [Route("/", root, methods=["GET"]), Mount("/console", app=console_app(gateway))]
