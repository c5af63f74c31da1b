"""querygate: a policy gateway in front of production PostgreSQL.

People call named, typed query functions as themselves; field policies decide
per output column (traced to base columns) what they see; every call writes an
append-only, hash-chained audit event before any data leaves.
"""

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
    "CallResult": "querygate.results",
    "Gateway": "querygate.gateway",
    "Project": "querygate.project",
    "load_project": "querygate.project",
}


def __getattr__(name: str) -> object:
    """The heavier parts load on first use, so the CLI starts fast."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'querygate' has no attribute {name!r}")

__all__ = [
    "AuditUnavailable",
    "BadParameters",
    "CallResult",
    "ClientGone",
    "Gateway",
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
    "load_project",
]
