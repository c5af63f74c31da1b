"""``querygate.lock``: the columns every relation had when the catalog was last approved.

A column that appears later (``ALTER TABLE … ADD COLUMN``) is not in the lock,
so it carries the built-in tag ``unclassified`` until someone classifies it and
runs ``querygate check --lock`` again: never returned in clear by default.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from querygate.errors import ProjectError
from querygate.lineage import Schema

LOCK_NAME = "querygate.lock"


def read_lock(root: Path) -> Mapping[str, frozenset[str]] | None:
    """Relation -> approved columns, or None when the project has no lock yet."""
    path = root / LOCK_NAME
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {str(rel): frozenset(map(str, cols)) for rel, cols in data["columns"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ProjectError("is not a valid lock file; regenerate it with `querygate check --lock`",
                           path=str(path)) from None


def write_lock(root: Path, schema: Schema) -> Path:
    """Record every relation's current columns as approved."""
    columns = {
        name: sorted(c.name for c in rel.columns)
        for name, rel in sorted(schema.relations.items())
    }
    path = root / LOCK_NAME
    path.write_text(json.dumps({"version": 1, "columns": columns}, indent=1) + "\n",
                    encoding="utf-8")
    return path


def new_columns(schema: Schema, lock: Mapping[str, frozenset[str]] | None) -> frozenset[str]:
    """Base columns of locked relations that the lock does not list."""
    if lock is None:
        return frozenset()
    return frozenset(
        f"{name}.{col.name}"
        for name, rel in schema.relations.items() if name in lock
        for col in rel.columns if col.name not in lock[name]
    )
