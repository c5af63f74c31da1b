"""querygate: a policy gateway in front of production PostgreSQL.

People call named, typed query functions as themselves; field policies decide
per output column (traced to base columns) what they see; every call writes an
append-only, hash-chained audit event before any data leaves.

In a Python program::

    async with querygate.open("path/to/project") as gw:
        result = await gw.call("get_customer_by_id", {"customer_id": 42}, token=token)
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from querygate.errors import (
    AuditUnavailable,
    BadParameters,
    ClientGone,
    LimitExceeded,
    NotAuthenticated,
    NotFound,
    PolicyDenied,
    ProjectError,
    QuerygateError,
    StatementTimeout,
    Unavailable,
    UpstreamError,
)

__version__ = "0.1.0"

_LAZY = {
    "CallResult": ("querygate.gateway", "CallResult"),
    "Export": ("querygate.gateway", "Export"),
    "Gateway": ("querygate.gateway", "Gateway"),
    "InProcess": ("querygate.gateway", "InProcess"),
    "open": ("querygate.gateway", "open_gateway"),
    "Project": ("querygate.project", "Project"),
    "load_project": ("querygate.project", "load_project"),
}


def __getattr__(name: str) -> object:
    """The heavier parts load on first use, so the CLI starts fast."""
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'querygate' has no attribute {name!r}")


if _TYPE_CHECKING:
    from querygate.gateway import CallResult, Export, Gateway, InProcess
    from querygate.gateway import open_gateway as open
    from querygate.project import Project, load_project

__all__ = [
    "AuditUnavailable",
    "BadParameters",
    "CallResult",
    "ClientGone",
    "Export",
    "Gateway",
    "InProcess",
    "LimitExceeded",
    "NotAuthenticated",
    "NotFound",
    "PolicyDenied",
    "Project",
    "ProjectError",
    "QuerygateError",
    "StatementTimeout",
    "Unavailable",
    "UpstreamError",
    "__version__",
    "load_project",
    "open",
]
