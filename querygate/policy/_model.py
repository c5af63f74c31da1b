"""Classification (tags and data subjects) and roles, as declared in querygate.yaml."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TableClass:
    """Classification of one table: its column tags and how its rows relate to subjects."""

    table: str  # "schema.table"
    columns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    subject: str | None = None  # rows are data subjects of this type
    subject_refs: Mapping[str, str] = field(default_factory=dict)  # subject type -> column


UNCLASSIFIED = "unclassified"


@dataclass(frozen=True)
class Classification:
    tables: Mapping[str, TableClass] = field(default_factory=dict)
    unclassified: frozenset[str] = frozenset()  # columns added since the catalog was approved

    def tags_of(self, source: str) -> tuple[str, ...]:
        """Tags of one base column ``schema.table.column``."""
        if source in self.unclassified:
            return (UNCLASSIFIED,)
        table, _, column = source.rpartition(".")
        entry = self.tables.get(table)
        return entry.columns.get(column, ()) if entry else ()

    @property
    def all_tags(self) -> frozenset[str]:
        return frozenset(t for e in self.tables.values() for tags in e.columns.values() for t in tags)


@dataclass(frozen=True)
class Role:
    name: str
    functions: tuple[str, ...]  # names or glob patterns
    fields: Mapping[str, str]  # tag -> decision
    options: Mapping[str, object] = field(default_factory=dict)  # adhoc, requires_reason, …

    def grants(self, function: str) -> str | None:
        """The grant pattern that gives this role ``function``, if any."""
        for pattern in self.functions:
            if fnmatch.fnmatchcase(function, pattern):
                return pattern
        return None
