"""The HTTP API: calls, the caller's function list, OpenAPI and health.

More routes come from modules named ``_routes_*.py`` in this package, each with
``routes(gateway) -> list[Route]``; wrap handlers in ``handle_errors``.
"""

from querygate.api._app import bearer_token, create_app, handle_errors, json_response, read_json
from querygate.api._openapi import openapi

__all__ = ["bearer_token", "create_app", "handle_errors", "json_response", "openapi", "read_json"]
