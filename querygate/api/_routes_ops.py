"""Operations endpoints for load balancers and Prometheus (docs/operations.md).

- ``GET /metrics``: this process's metrics in Prometheus text format, plus the deployment's
  shared figures read from the audit store at scrape time.
- ``GET /readyz``: 200 when the database, the audit store and the signing key are usable;
  503 with a JSON body naming what is not. ``GET /healthz`` (the process answers) is in
  ``_app``.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from querygate.api._http import json_response
from querygate.gateway import Gateway

STORE_TIMEOUT_S = 1.0  # a scrape waits at most this for the shared figures


def routes(gateway: Gateway) -> list[Route]:
    async def scrape(request: Request) -> Response:
        await gateway.refresh_metrics(STORE_TIMEOUT_S)
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    async def readyz(request: Request) -> Response:
        state = await gateway.readiness()
        return json_response(state.to_json(), 200 if state.ready else 503)

    return [Route("/metrics", scrape, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"])]
