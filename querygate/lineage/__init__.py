"""Lineage: which base-table columns every output, filter and parameter of a query derives from.

sqlglot parses PostgreSQL, qualifies every column against the live schema and splits the
query into scopes; querygate walks those scopes itself (views expanded, whole-row references,
recursive CTEs), so masking follows values through any SQL, and what it cannot trace counts as
every column the query reads.
"""

from querygate.lineage._analyze import analyze
from querygate.lineage._load import load_schema
from querygate.lineage._model import (
    Analysis,
    Column,
    LineageError,
    OutputColumn,
    Relation,
    Schema,
)

__all__ = [
    "Analysis",
    "Column",
    "LineageError",
    "OutputColumn",
    "Relation",
    "Schema",
    "analyze",
    "load_schema",
]
