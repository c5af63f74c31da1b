"""The HTTP API: calls, the caller's function list, OpenAPI and health."""

from querygate.api._app import create_app
from querygate.api._openapi import openapi

__all__ = ["create_app", "openapi"]
