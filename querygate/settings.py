"""The one table of settings: name, default and help, read from ``settings:`` in querygate.yaml."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from querygate.errors import ProjectError


@dataclass(frozen=True)
class Setting:
    name: str
    default: int | float
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("statement_timeout_ms", 5000, "Longest a function's query may run; past it: 504."),
    Setting("max_rows", 10000, "Most rows one call returns; more are cut and the response says so."),
    Setting("max_param_chars", 10000, "Longest text parameter value accepted (422 past it)."),
    Setting("max_request_bytes", 1_048_576, "Largest request body accepted (413 past it)."),
    Setting("pool_min_size", 1, "Connections the query pool keeps open."),
    Setting("pool_max_size", 10, "Most connections the query pool opens."),
    Setting("pool_timeout_s", 5.0, "Longest a call waits for a free connection; then 503."),
    Setting("audit_pool_max_size", 10, "Most connections the audit store pool opens."),
    Setting("audit_timeout_ms", 2000, "Longest an audit write may take; past it the call fails with 503."),
)


@dataclass(frozen=True)
class Settings:
    statement_timeout_ms: int = 5000
    max_rows: int = 10000
    max_param_chars: int = 10000
    max_request_bytes: int = 1_048_576
    pool_min_size: int = 1
    pool_max_size: int = 10
    pool_timeout_s: float = 5.0
    audit_pool_max_size: int = 10
    audit_timeout_ms: int = 2000


def load_settings(raw: Mapping[str, Any] | None, *, path: str) -> Settings:
    """Settings from the ``settings:`` mapping; unknown names and wrong types are errors."""
    known = {f.name: f for f in fields(Settings)}
    values: dict[str, Any] = {}
    for name, value in (raw or {}).items():
        if name not in known:
            raise ProjectError(
                f"unknown setting {name!r}; known settings: {', '.join(known)}", path=path
            )
        default = getattr(Settings(), name)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ProjectError(f"setting {name!r} must be a positive number", path=path)
        values[name] = type(default)(value)
    return Settings(**values)
