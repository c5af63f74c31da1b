"""Query files: blocks of ``-- name:``, description, ``-- param`` lines and SQL."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

from querygate.catalog._params import TYPE_NAMES, Parameter
from querygate.errors import ProjectError

_NAME = re.compile(r"--\s*name:\s*(.*)$")
_PARAM = re.compile(r"--\s*param\s+([^:\s]+)\s*:\s*(.*?)\s*$")
_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True)
class QueryBlock:
    """One function as written in a query file, before analysis."""

    name: str
    description: str
    parameters: tuple[Parameter, ...]
    sql: str
    path: str
    line: int


def parse_query_file(path: Path, text: str | None = None) -> list[QueryBlock]:
    """Split one ``queries/*.sql`` file into its function blocks."""
    lines = (path.read_text(encoding="utf-8") if text is None else text).splitlines()
    starts = [i for i, line in enumerate(lines) if _NAME.match(line.strip())]
    if not starts and any(line.strip() and not line.strip().startswith("--") for line in lines):
        raise ProjectError("SQL before any '-- name:' line", path=str(path), line=1)
    if starts and any(
        line.strip() and not line.strip().startswith("--") for line in lines[: starts[0]]
    ):
        raise ProjectError("SQL before the first '-- name:' line", path=str(path), line=1)
    bounds = [*starts, len(lines)]
    return [_parse_block(path, lines, a, b) for a, b in itertools.pairwise(bounds)]


def _parse_block(path: Path, lines: list[str], start: int, end: int) -> QueryBlock:
    where = str(path)
    match = _NAME.match(lines[start].strip())
    assert match is not None
    name = match.group(1).strip()
    if not _IDENT.fullmatch(name):
        raise ProjectError(
            f"function name {name!r} must be lowercase letters, digits and '_'",
            path=where,
            line=start + 1,
        )
    description: list[str] = []
    params: list[Parameter] = []
    i = start + 1
    while i < end and lines[i].strip().startswith("--"):
        header = lines[i].strip()
        if header.startswith("-- param") or header.startswith("--param"):
            params.append(_parse_param(header, where, i + 1, params))
        else:
            description.append(header[2:].strip())
        i += 1
    sql = "\n".join(lines[i:end]).strip()
    if not sql:
        raise ProjectError(f"function {name!r} has no SQL", path=where, line=start + 1)
    return QueryBlock(name, " ".join(d for d in description if d), tuple(params), sql, where, start + 1)


def _parse_param(header: str, where: str, line: int, seen: list[Parameter]) -> Parameter:
    match = _PARAM.match(header)
    if match is None:
        raise ProjectError("expected '-- param NAME: TYPE'", path=where, line=line)
    name, type_name = match.group(1), match.group(2).lower()
    if not _IDENT.fullmatch(name):
        raise ProjectError(f"parameter name {name!r} is not a valid name", path=where, line=line)
    if type_name not in TYPE_NAMES:
        raise ProjectError(
            f"parameter {name!r} has unknown type {type_name!r}; "
            f"use one of {', '.join(TYPE_NAMES)}",
            path=where,
            line=line,
        )
    if any(p.name == name for p in seen):
        raise ProjectError(f"parameter {name!r} is declared twice", path=where, line=line)
    return Parameter(name, type_name)
