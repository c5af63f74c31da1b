"""The web console under ``/console/`` (querygate.console), and ``/`` redirecting to it."""

from __future__ import annotations

from starlette.routing import BaseRoute

from querygate.console import console_routes
from querygate.gateway import Gateway


def routes(gateway: Gateway) -> list[BaseRoute]:
    return console_routes(gateway)
