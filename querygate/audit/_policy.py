"""Policy history: the version of the catalog and policy that decided each event.

A version is the SHA-256 of the rules as data (roles, classification, each function's SQL),
never of the YAML file, which may hold secrets. The gateway records each version it serves in
``querygate.policy_versions`` (append-only) and stamps it on every event, so a report can show
which rules were in force on a date.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from querygate.project import Project


def policy_rules(project: Project) -> dict[str, Any]:
    """The rules that decide calls, as plain JSON data (no secrets, no connection URLs)."""
    return {
        "roles": {name: {"functions": list(role.functions), "fields": dict(role.fields),
                         "options": dict(role.options)}
                  for name, role in sorted(project.roles.items())},
        "classification": {name: {"subject": table.subject, "columns": dict(table.columns),
                                  "subject_refs": dict(table.subject_refs)}
                           for name, table in sorted(project.classification.tables.items())},
        "functions": {name: hashlib.sha256(fn.sql.encode()).hexdigest()
                      for name, fn in sorted(project.catalog.items())},
    }


def _encode(rules: dict[str, Any]) -> bytes:
    return json.dumps(rules, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode()


def policy_version(project: Project) -> str:
    """``pv:`` and the first 16 hex digits of the rules' SHA-256: short, stable, comparable."""
    return "pv:" + hashlib.sha256(_encode(policy_rules(project))).hexdigest()[:16]


def _git_source(root: Path) -> dict[str, str]:
    """The last commit that touched the project, when the project is a git checkout."""
    git = shutil.which("git")
    if git is None:
        return {}
    try:
        out = subprocess.run(  # noqa: S603 - fixed arguments, no shell
            [git, "-C", str(root), "log", "-1", "--format=%H%x00%an <%ae>%x00%cI", "--", "."],
            capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return {}
    parts = out.stdout.strip().split("\x00")
    if out.returncode != 0 or len(parts) != 3:
        return {}
    return {"commit": parts[0], "author": parts[1], "committed_at": parts[2]}


async def record_policy_version(conn: psycopg.AsyncConnection[Any], project: Project) -> str:
    """Record the project's policy version (once; later calls change nothing); return it."""
    version = policy_version(project)
    await conn.execute(
        "INSERT INTO querygate.policy_versions (version, rules, source) VALUES (%s, %s, %s) "
        "ON CONFLICT (version) DO NOTHING",
        (version, Jsonb(json.loads(_encode(policy_rules(project)))), Jsonb(_git_source(project.root))))
    return version
