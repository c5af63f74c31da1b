"""The public surface of querygate.lineage is exactly what other packages rely on."""

from __future__ import annotations

import querygate.lineage as lineage
from querygate.errors import QuerygateError


def test_public_names() -> None:
    assert sorted(lineage.__all__) == [
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
    for name in lineage.__all__:  # errors live in the one tree, and are re-exported here
        owner = getattr(lineage, name).__module__
        assert owner.startswith("querygate.lineage") or owner == "querygate.errors", name


def test_lineage_error_is_a_querygate_error() -> None:
    assert issubclass(lineage.LineageError, QuerygateError)


def test_relation_and_schema_helpers() -> None:
    relation = lineage.Relation("s", "t", (lineage.Column("a", "int"),), ("a",))
    schema = lineage.Schema({"s.t": relation}, search_path=("x", "s"))
    assert relation.qualified == "s.t"
    assert schema.find("t") is relation
    assert schema.find("t", "s") is relation
    assert schema.find("t", "x") is None
    assert dict(schema.sql_functions) == {}
