"""Typed parameters: hostile and malformed values are refused with the parameter's name."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from querygate.catalog import Parameter, bind
from querygate.errors import BadParameters

P = (Parameter("customer_id", "int"),)


@pytest.mark.parametrize(
    ("type_name", "value", "expected"),
    [
        ("int", 42, 42),
        ("int", "42", 42),
        ("bigint", 2**40, 2**40),
        ("numeric", "12.50", Decimal("12.50")),
        ("numeric", 3, Decimal(3)),
        ("text", "'; DROP TABLE customers; --", "'; DROP TABLE customers; --"),
        ("text", "\nWHERE false --", "\nWHERE false --"),
        ("bool", True, True),
        ("bool", "false", False),
        ("date", "2026-03-01", dt.date(2026, 3, 1)),
        ("timestamptz", "2026-03-01T10:00:00Z", dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC)),
        ("uuid", "12345678-1234-5678-1234-567812345678",
         uuid.UUID("12345678-1234-5678-1234-567812345678")),
        ("text[]", ["a", "b"], ["a", "b"]),
        ("int[]", [1, "2"], [1, 2]),
    ],
)
def test_valid_values_convert(type_name: str, value: object, expected: object) -> None:
    assert bind((Parameter("x", type_name),), {"x": value}, max_chars=100) == {"x": expected}


@pytest.mark.parametrize(
    ("type_name", "value"),
    [
        ("int", "1 OR 1=1"),
        ("int", 2**31),
        ("int", True),
        ("int", 1.5),
        ("int", None),
        ("bigint", 2**63),
        ("numeric", float("nan")),
        ("numeric", float("inf")),
        ("numeric", "NaN"),
        ("numeric", "1e999999"),
        ("text", "a\x00b"),
        ("text", "x" * 1_000_001),
        ("text", "\udc80"),
        ("text", {"nested": {"deep": [1]}}),
        ("bool", "yes"),
        ("date", "2026-02-30"),
        ("date", "tomorrow"),
        ("timestamptz", "2026-03-01T10:00:00"),
        ("uuid", "not-a-uuid"),
        ("int[]", "1,2"),
        ("int[]", list(range(1001))),
    ],
)
def test_invalid_values_are_refused_naming_the_parameter(type_name: str, value: object) -> None:
    with pytest.raises(BadParameters) as caught:
        bind((Parameter("x", type_name),), {"x": value}, max_chars=1000)
    assert caught.value.parameter == "x"
    assert caught.value.status == 422
    assert "'x'" in caught.value.message


def test_missing_and_unknown_parameters() -> None:
    with pytest.raises(BadParameters, match="missing parameter 'customer_id'"):
        bind(P, {}, max_chars=10)
    with pytest.raises(BadParameters, match="unknown parameter 'extra'"):
        bind(P, {"customer_id": 1, "extra": 2}, max_chars=10)
    with pytest.raises(BadParameters, match="must be a JSON object"):
        bind(P, [1], max_chars=10)


@given(st.text(max_size=50))
def test_text_either_binds_unchanged_or_is_refused(value: str) -> None:
    try:
        bound = bind((Parameter("t", "text"),), {"t": value}, max_chars=50)
    except BadParameters:
        assert "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    else:
        assert bound == {"t": value}


@given(st.integers())
def test_int_range_is_exact(value: int) -> None:
    try:
        bound = bind(P, {"customer_id": value}, max_chars=10)
    except BadParameters:
        assert not -(2**31) <= value < 2**31
    else:
        assert bound == {"customer_id": value}
