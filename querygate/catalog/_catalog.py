"""The catalog: every named function of a project, loaded from ``queries/*.sql``."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot.errors import SqlglotError

from querygate.catalog._params import Parameter, bind
from querygate.catalog._queryfile import QueryBlock, parse_query_file
from querygate.catalog._sql import placeholders, to_psycopg
from querygate.errors import ProjectError


@dataclass(frozen=True)
class Function:
    """A named, parameterised, read-only query."""

    name: str
    description: str
    parameters: tuple[Parameter, ...]
    sql: str
    exec_sql: str
    path: str
    line: int

    def bind(self, values: object, *, max_chars: int) -> dict[str, object]:
        return bind(self.parameters, values, max_chars=max_chars)


class Catalog(Mapping[str, Function]):
    """Functions by name, in the order the files declare them."""

    def __init__(self, functions: list[Function]) -> None:
        self._functions = {f.name: f for f in functions}

    def __getitem__(self, name: str) -> Function:
        return self._functions[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._functions)

    def __len__(self) -> int:
        return len(self._functions)

    def matching(self, pattern: str) -> list[str]:
        """Names matched by a grant: an exact name or a glob such as ``search_*``."""
        return [name for name in self._functions if fnmatch.fnmatchcase(name, pattern)]


def load_catalog(queries_dir: Path) -> Catalog:
    """Load and validate every ``*.sql`` file under ``queries_dir``."""
    if not queries_dir.is_dir():
        raise ProjectError("folder not found; a project keeps its functions in queries/*.sql",
                           path=str(queries_dir))
    functions: list[Function] = []
    seen: dict[str, QueryBlock] = {}
    for path in sorted(queries_dir.glob("**/*.sql")):
        for block in parse_query_file(path):
            if block.name in seen:
                first = seen[block.name]
                raise ProjectError(
                    f"duplicate function name {block.name!r} (first defined at "
                    f"{first.path}:{first.line})",
                    path=block.path,
                    line=block.line,
                )
            seen[block.name] = block
            functions.append(_compile(block))
    return Catalog(functions)


def _compile(block: QueryBlock) -> Function:
    try:
        used = {name for _, _, name in placeholders(block.sql)}
        statements = [s for s in sqlglot.parse(block.sql, dialect="postgres") if s is not None]
    except (SqlglotError, ValueError) as exc:
        raise ProjectError(
            f"SQL of {block.name!r} does not parse: {str(exc).splitlines()[0]}",
            path=block.path,
            line=block.line,
        ) from None
    if len(statements) != 1:
        raise ProjectError(
            f"function {block.name!r} must hold exactly one SQL statement, found {len(statements)}",
            path=block.path,
            line=block.line,
        )
    declared = {p.name for p in block.parameters}
    for name in sorted(used - declared):
        raise ProjectError(
            f"function {block.name!r} uses :{name} but declares no '-- param {name}: TYPE'",
            path=block.path,
            line=block.line,
        )
    for name in sorted(declared - used):
        raise ProjectError(
            f"function {block.name!r} declares parameter {name!r} but its SQL never uses :{name}",
            path=block.path,
            line=block.line,
        )
    return Function(
        name=block.name,
        description=block.description,
        parameters=block.parameters,
        sql=block.sql,
        exec_sql=to_psycopg(block.sql),
        path=block.path,
        line=block.line,
    )
