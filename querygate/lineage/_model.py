"""The values the lineage engine reads (a schema) and writes (an analysis)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class Column:
    name: str
    type: str


@dataclass(frozen=True)
class Relation:
    """A table, partitioned table, view or materialized view."""

    schema: str
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    view_sql: str | None = None
    oid: int = 0

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def is_view(self) -> bool:
        return self.view_sql is not None

    def column_sources(self) -> frozenset[str]:
        """Every column of this relation as a ``schema.table.column`` source."""
        return frozenset(f"{self.qualified}.{c.name}" for c in self.columns)


@dataclass(frozen=True)
class Schema:
    """The relations a query may read, keyed ``schema.name``."""

    relations: Mapping[str, Relation]
    search_path: tuple[str, ...] = ("public",)
    sql_functions: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def find(self, name: str, schema: str | None = None) -> Relation | None:
        """The relation ``schema.name``, or the first ``name`` along the search path."""
        if schema is not None:
            return self.relations.get(f"{schema}.{name}")
        for candidate in self.search_path:
            found = self.relations.get(f"{candidate}.{name}")
            if found is not None:
                return found
        return None

    def find_function(self, name: str, schema: str | None = None) -> str | None:
        """The ``schema.fname`` key of a user function, resolved like :meth:`find`."""
        schemas = (schema,) if schema is not None else self.search_path
        for candidate in schemas:
            key = f"{candidate}.{name}"
            if key in self.sql_functions:
                return key
        return None


@dataclass(frozen=True)
class OutputColumn:
    """One result column and the base columns its value derives from."""

    name: str
    sources: frozenset[str]
    direct: bool
    traced: bool = True


@dataclass(frozen=True)
class Analysis:
    """What a query returns, what it reads to decide which rows, and what its parameters touch."""

    columns: tuple[OutputColumn, ...]
    filters: frozenset[str]
    tables: frozenset[str]
    parameters: Mapping[str, frozenset[str]]
    equalities: Mapping[str, frozenset[str]]
    problems: tuple[str, ...] = ()
