"""Lineage: the base-table columns behind every output, filter and parameter of a query.

sqlglot parses PostgreSQL and qualifies it against the live schema, so views, CTEs, set
operations and whole-row references are traced by scope, not guessed from text.
"""

from querygate.errors import LineageError
from querygate.lineage._analyze import analyze
from querygate.lineage._load import load_schema
from querygate.lineage._model import Analysis, Column, OutputColumn, Relation, Schema
from querygate.lineage._parse import parse_query

__all__ = [
    "Analysis",
    "Column",
    "LineageError",
    "OutputColumn",
    "Relation",
    "Schema",
    "analyze",
    "load_schema",
    "parse_query",
]
