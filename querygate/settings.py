"""The one table of settings: name, default and help, read from ``settings:`` in querygate.yaml."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from querygate.errors import ProjectError


def _setting(default: int | float, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    statement_timeout_ms: int = _setting(5000, "Longest a function's query may run; past it: 504.")
    max_rows: int = _setting(10000, "Most rows one call returns; more are cut and the response "
                                    "says so (truncated).")
    max_export_rows: int = _setting(1_000_000, "Most rows one export (POST /v1/export) streams.")
    max_param_chars: int = _setting(10000, "Longest text parameter value accepted (422 past it).")
    max_request_bytes: int = _setting(1_048_576, "Largest request body accepted (413 past it).")
    pool_min_size: int = _setting(1, "Connections the query pool keeps open.")
    pool_max_size: int = _setting(10, "Most connections the query pool opens.")
    pool_timeout_s: float = _setting(5.0, "Longest a call waits for a free connection; then 503.")
    audit_pool_max_size: int = _setting(10, "Most connections the audit store pool opens.")
    audit_timeout_ms: int = _setting(2000, "Longest an audit write may take; past it the call "
                                           "fails with 503 and returns nothing.")


SETTINGS: tuple[tuple[str, int | float, str], ...] = tuple(
    (f.name, f.default, f.metadata["help"]) for f in fields(Settings)  # type: ignore[misc]
)
"""(name, default, help) of every setting, for docs and `--help`."""


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
