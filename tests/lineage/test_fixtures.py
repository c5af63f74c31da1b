"""Every case in ``fixtures/*.sql``: query in, expected lineage (or refusal) out."""

from __future__ import annotations

import pytest
from lineage_cases import Case, load_cases

from querygate.lineage import Analysis, LineageError, Schema, analyze

CASES = load_cases()


def test_enough_cases() -> None:
    assert len(CASES) >= 120
    assert len({case.id for case in CASES}) == len(CASES), "case names must be unique"


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_case(case: Case, schema: Schema) -> None:
    if case.error is not None:
        with pytest.raises(LineageError) as raised:
            analyze(case.sql, schema)
        assert case.error.lower() in str(raised.value).lower()
        return
    result = analyze(case.sql, schema)
    _check_columns(case, result, schema)
    if case.filters is not None:
        assert result.filters == case.filters, "filters"
    if case.tables is not None:
        assert result.tables == case.tables, "tables"
    if case.parameters is not None:
        assert dict(result.parameters) == case.parameters, "parameters"
    if case.equalities is not None:
        assert dict(result.equalities) == case.equalities, "equalities"
    if case.problems is not None:
        assert any(case.problems in problem for problem in result.problems), result.problems


def _check_columns(case: Case, result: Analysis, schema: Schema) -> None:
    if case.columns is None:
        return
    everything = frozenset().union(*(schema.relations[t].column_sources() for t in result.tables))
    got = [(c.name, c.sources, c.direct, c.traced) for c in result.columns]
    want = [
        (c.name, everything if c.sources is None else c.sources, c.direct, c.traced)
        for c in case.columns
    ]
    assert got == want
