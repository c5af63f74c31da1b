"""The HTTP API: a Starlette app over one ``Gateway``.

``create_app`` assembles the routes listed in ``_app.ROUTES``; the helpers every route uses
(``handle_errors``, ``json_response``, ``read_json``, ``bearer_token``) are in ``_http``.
"""

from querygate.api._app import ROUTES, create_app
from querygate.api._http import bearer_token, handle_errors, json_response, read_json
from querygate.api._openapi import openapi

__all__ = ["ROUTES", "bearer_token", "create_app", "handle_errors", "json_response", "openapi",
           "read_json"]
