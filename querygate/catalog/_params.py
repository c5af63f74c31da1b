"""Typed parameters: declared in query files, validated before anything reaches PostgreSQL."""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from querygate.errors import BadParameters

INT4 = (-(2**31), 2**31 - 1)
INT8 = (-(2**63), 2**63 - 1)
MAX_ARRAY_ITEMS = 1000
_INT_TEXT = re.compile(r"-?[0-9]{1,20}")
_NUMERIC_TEXT = re.compile(r"-?[0-9]{1,40}(\.[0-9]{1,40})?")


def _int_in(bounds: tuple[int, int], type_name: str) -> Callable[[object, int], object]:
    def convert(value: object, max_chars: int) -> object:
        if isinstance(value, bool):
            raise ValueError(f"expected {type_name}, got a boolean")
        if isinstance(value, str) and _INT_TEXT.fullmatch(value):
            value = int(value)
        if not isinstance(value, int):
            raise ValueError(f"expected {type_name} (a whole number)")
        if not bounds[0] <= value <= bounds[1]:
            raise ValueError(f"out of range for {type_name}")
        return value

    return convert


def _numeric(value: object, max_chars: int) -> object:
    if isinstance(value, bool):
        raise ValueError("expected numeric, got a boolean")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("expected a finite number")
        return Decimal(repr(value))
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str) and _NUMERIC_TEXT.fullmatch(value):
        try:
            return Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
            pass
    raise ValueError("expected numeric (a finite decimal number)")


def _text(value: object, max_chars: int) -> object:
    if not isinstance(value, str):
        raise ValueError("expected text (a string)")
    if len(value) > max_chars:
        raise ValueError(f"longer than {max_chars} characters")
    if "\x00" in value:
        raise ValueError("contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid UTF-8 text") from None
    return value


def _bool(value: object, max_chars: int) -> object:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ValueError("expected bool (true or false)")


def _date(value: object, max_chars: int) -> object:
    if isinstance(value, str) and len(value) == 10:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError("expected date (YYYY-MM-DD)")


def _timestamptz(value: object, max_chars: int) -> object:
    if isinstance(value, str) and len(value) <= 40:
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    raise ValueError("expected timestamptz (ISO 8601 with a time zone, e.g. 2026-03-01T00:00:00Z)")


def _uuid(value: object, max_chars: int) -> object:
    if isinstance(value, str) and len(value) <= 40:
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise ValueError("expected uuid")


SCALARS: Mapping[str, Callable[[object, int], object]] = {
    "int": _int_in(INT4, "int"),
    "bigint": _int_in(INT8, "bigint"),
    "numeric": _numeric,
    "text": _text,
    "bool": _bool,
    "date": _date,
    "timestamptz": _timestamptz,
    "uuid": _uuid,
}

_JSON_SCHEMAS: Mapping[str, dict[str, Any]] = {
    "int": {"type": "integer", "minimum": INT4[0], "maximum": INT4[1]},
    "bigint": {"type": "integer", "minimum": INT8[0], "maximum": INT8[1]},
    "numeric": {"type": "number"},
    "text": {"type": "string"},
    "bool": {"type": "boolean"},
    "date": {"type": "string", "format": "date"},
    "timestamptz": {"type": "string", "format": "date-time"},
    "uuid": {"type": "string", "format": "uuid"},
}

TYPE_NAMES = tuple(SCALARS) + tuple(f"{name}[]" for name in SCALARS)


@dataclass(frozen=True)
class Parameter:
    """One declared parameter of a function: ``-- param NAME: TYPE``."""

    name: str
    type: str

    @property
    def is_array(self) -> bool:
        return self.type.endswith("[]")

    def convert(self, value: object, *, max_chars: int) -> object:
        """The Python value to bind, or BadParameters naming this parameter."""
        scalar = SCALARS[self.type.removesuffix("[]")]
        try:
            if not self.is_array:
                return scalar(value, max_chars)
            if not isinstance(value, list):
                raise ValueError(f"expected an array of {self.type[:-2]}")
            if len(value) > MAX_ARRAY_ITEMS:
                raise ValueError(f"more than {MAX_ARRAY_ITEMS} items")
            return [scalar(item, max_chars) for item in value]
        except ValueError as exc:
            raise BadParameters(f"parameter {self.name!r}: {exc}", parameter=self.name) from None

    def json_schema(self, *, max_chars: int) -> dict[str, Any]:
        base = dict(_JSON_SCHEMAS[self.type.removesuffix("[]")])
        if base.get("type") == "string" and self.type.removesuffix("[]") == "text":
            base["maxLength"] = max_chars
        if self.is_array:
            return {"type": "array", "items": base, "maxItems": MAX_ARRAY_ITEMS}
        return base


def bind(
    parameters: tuple[Parameter, ...], values: object, *, max_chars: int
) -> dict[str, object]:
    """Validate a caller's ``params`` object against the declared parameters."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise BadParameters("params must be a JSON object")
    declared = {p.name: p for p in parameters}
    unknown = sorted(str(k) for k in values if k not in declared)
    if unknown:
        shown = unknown[0][:64]
        raise BadParameters(f"unknown parameter {shown!r}", parameter=shown)
    missing = [p.name for p in parameters if p.name not in values]
    if missing:
        raise BadParameters(f"missing parameter {missing[0]!r}", parameter=missing[0])
    return {p.name: p.convert(values[p.name], max_chars=max_chars) for p in parameters}
