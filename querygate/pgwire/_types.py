"""Values on the wire: parameters in, result values out, in text and binary formats.

Parameters are decoded to the plain values ``Function.bind`` validates (text stays text, so
the catalog's own checks decide); results are encoded by the type their column declares.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import struct
import uuid
from collections.abc import Callable
from decimal import Context, Decimal, localcontext
from typing import Any

BOOL, BYTEA, CHAR, NAME, INT8, INT2, INT4, TEXT, OID = 16, 17, 18, 19, 20, 21, 23, 25, 26
JSON, FLOAT4, FLOAT8, UNKNOWN, VARCHAR, BPCHAR = 114, 700, 701, 705, 1043, 1042
DATE, TIMESTAMP, TIMESTAMPTZ, NUMERIC, UUID, JSONB = 1082, 1114, 1184, 1700, 2950, 3802

ARRAY_OF = {BOOL: 1000, INT2: 1005, INT4: 1007, TEXT: 1009, INT8: 1016, VARCHAR: 1015,
            FLOAT4: 1021, FLOAT8: 1022, DATE: 1182, TIMESTAMP: 1115, TIMESTAMPTZ: 1185,
            NUMERIC: 1231, UUID: 2951, NAME: 1003, BPCHAR: 1014, JSONB: 3807, JSON: 199,
            OID: 1028}
ELEMENT_OF = {v: k for k, v in ARRAY_OF.items()}
SIZES = {BOOL: 1, INT2: 2, INT4: 4, INT8: 8, FLOAT4: 4, FLOAT8: 8, DATE: 4, TIMESTAMP: 8,
         TIMESTAMPTZ: 8, UUID: 16, OID: 4, NAME: 64}
NAMES = {BOOL: "boolean", BYTEA: "bytea", NAME: "name", INT8: "bigint", INT2: "smallint",
         INT4: "integer", TEXT: "text", OID: "oid", JSON: "json", FLOAT4: "real",
         FLOAT8: "double precision", VARCHAR: "character varying", BPCHAR: "character",
         DATE: "date", TIMESTAMP: "timestamp without time zone",
         TIMESTAMPTZ: "timestamp with time zone", NUMERIC: "numeric", UUID: "uuid",
         JSONB: "jsonb"}

# the catalog's parameter types
PARAM_OIDS = {"int": INT4, "bigint": INT8, "numeric": NUMERIC, "text": TEXT, "bool": BOOL,
              "date": DATE, "timestamptz": TIMESTAMPTZ, "uuid": UUID}
# binary formats this module writes; any other type is described and sent as text
BINARY_OUT = {BOOL, BYTEA, CHAR, NAME, INT8, INT2, INT4, TEXT, OID, JSON, FLOAT4, FLOAT8, VARCHAR,
              BPCHAR, DATE, TIMESTAMP, TIMESTAMPTZ, NUMERIC, UUID, JSONB}

_EPOCH_DATE = dt.date(2000, 1, 1)
_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_MAX_ARRAY_ITEMS = 1000
_SPACE = " \t\n\r\f\v"  # what PostgreSQL's array parser skips around elements


class BadValue(ValueError):
    """A parameter value that cannot be read in its declared type and format."""


def param_oid(type_name: str) -> int:
    """The OID of a catalog parameter type (``text[]`` → 1009)."""
    scalar = PARAM_OIDS[type_name.removesuffix("[]")]
    return ARRAY_OF[scalar] if type_name.endswith("[]") else scalar


def type_name(oid: int) -> str:
    if oid in ELEMENT_OF:
        return f"{NAMES.get(ELEMENT_OF[oid], 'text')}[]"
    return NAMES.get(oid, "text")


# ---- parameters in ------------------------------------------------------------------------

def decode_param(raw: bytes | None, fmt: int, oid: int) -> object:
    """A parameter as the plain value Function.bind checks (ints, text, lists, bools)."""
    if raw is None:
        return None
    if fmt == 0:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadValue("is not valid UTF-8") from None
        return _from_text(text, oid)
    if fmt != 1:
        raise BadValue(f"format code {fmt} is neither text (0) nor binary (1)")
    return _from_binary(raw, oid)


def _from_text(text: str, oid: int) -> object:
    if oid in ELEMENT_OF:
        return [None if v is None else _from_text(v, ELEMENT_OF[oid])
                for v in parse_array(text)]
    if oid == BOOL:
        lowered = text.strip().lower()
        if lowered in ("t", "true", "on", "yes", "1", "y"):
            return True
        if lowered in ("f", "false", "off", "no", "0", "n"):
            return False
        raise BadValue("is not a boolean")
    if oid in (INT2, INT4, INT8):
        return text.strip()
    return text


def parse_array(text: str) -> list[str | None]:
    """A one-dimensional array literal, ``{1,"a b",NULL}``, as its elements' text."""
    text = text.strip()
    if len(text) < 2 or text[0] != "{" or text[-1] != "}":
        raise BadValue("is not an array literal ({...})")
    items: list[str | None] = []
    body, i = text[1:-1], 0
    if not body.strip(_SPACE):
        return items
    while i <= len(body):
        if len(items) >= _MAX_ARRAY_ITEMS:
            raise BadValue(f"has more than {_MAX_ARRAY_ITEMS} elements")
        item, i, quoted = _array_item(body, i)
        if item.startswith("{") and not quoted:
            raise BadValue("has more than one dimension")
        items.append(None if not quoted and item.upper() == "NULL" else item)
        if i < len(body) and body[i] != ",":
            raise BadValue("is not a valid array literal")
        i += 1
    return items


def _array_item(body: str, i: int) -> tuple[str, int, bool]:
    while i < len(body) and body[i] in _SPACE:
        i += 1
    if i < len(body) and body[i] == '"':
        out, i = [], i + 1
        while i < len(body) and body[i] != '"':
            if body[i] == "\\":
                i += 1
            if i < len(body):
                out.append(body[i])
            i += 1
        if i >= len(body):
            raise BadValue("has an unterminated quoted element")
        end = i + 1
        while end < len(body) and body[end] in _SPACE:
            end += 1
        return "".join(out), end, True
    end = body.find(",", i)
    end = len(body) if end < 0 else end
    return body[i:end].strip(_SPACE), end, False


def _fixed(raw: bytes, size: int) -> bytes:
    if len(raw) != size:
        raise BadValue(f"has {len(raw)} bytes; its binary form has {size}")
    return raw


def _from_binary(raw: bytes, oid: int) -> object:
    if oid in ELEMENT_OF:
        return _array_from_binary(raw)
    reader = _BINARY_IN.get(oid)
    if reader is None:
        raise BadValue(f"has type OID {oid}, which querygate does not read in binary")
    try:
        return reader(raw)
    except (struct.error, ValueError, OverflowError) as exc:
        raise BadValue(f"is not a valid binary {type_name(oid)}") from exc


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadValue("is not valid UTF-8") from None


def _numeric_in(raw: bytes) -> str:
    ndigits, weight, sign, dscale = struct.unpack_from("!hhHh", raw)
    if len(raw) != 8 + 2 * ndigits or ndigits < 0:
        raise BadValue("is not a valid binary numeric")
    if sign == 0xC000:
        return "NaN"
    digits = struct.unpack_from(f"!{ndigits}h", raw, 8)
    if any(not 0 <= d < 10000 for d in digits) or not 0 <= dscale <= 16383:
        raise BadValue("is not a valid binary numeric")
    whole = int("".join(f"{d:04d}" for d in digits) or "0")
    with localcontext(Context(prec=140_000)):
        value = Decimal(whole).scaleb(4 * (weight - ndigits + 1)).quantize(
            Decimal(1).scaleb(-dscale))
    text = f"{value:f}"
    return "-" + text if sign == 0x4000 else text


def _timestamp_in(raw: bytes) -> str:
    (micros,) = struct.unpack("!q", _fixed(raw, 8))
    return (_EPOCH + dt.timedelta(microseconds=micros)).isoformat()


_BINARY_IN: dict[int, Callable[[bytes], object]] = {
    BOOL: lambda r: _fixed(r, 1) != b"\x00",
    INT2: lambda r: struct.unpack("!h", _fixed(r, 2))[0],
    INT4: lambda r: struct.unpack("!i", _fixed(r, 4))[0],
    INT8: lambda r: struct.unpack("!q", _fixed(r, 8))[0],
    OID: lambda r: struct.unpack("!I", _fixed(r, 4))[0],
    FLOAT4: lambda r: struct.unpack("!f", _fixed(r, 4))[0],
    FLOAT8: lambda r: struct.unpack("!d", _fixed(r, 8))[0],
    TEXT: _utf8, VARCHAR: _utf8, NAME: _utf8, BPCHAR: _utf8, UNKNOWN: _utf8,
    NUMERIC: _numeric_in,
    DATE: lambda r: (_EPOCH_DATE + dt.timedelta(days=struct.unpack("!i", _fixed(r, 4))[0]))
    .isoformat(),
    TIMESTAMPTZ: _timestamp_in, TIMESTAMP: _timestamp_in,
    UUID: lambda r: str(uuid.UUID(bytes=_fixed(r, 16))),
}


def _array_from_binary(raw: bytes) -> list[object]:
    try:
        ndim, _flags, element = struct.unpack_from("!iiI", raw)
        if ndim == 0:
            return []
        if ndim != 1:
            raise BadValue("has more than one dimension")
        count, _lower = struct.unpack_from("!ii", raw, 12)
        if not 0 <= count <= _MAX_ARRAY_ITEMS:
            raise BadValue(f"has more than {_MAX_ARRAY_ITEMS} elements")
        pos, items = 20, list[object]()
        for _ in range(count):
            (size,) = struct.unpack_from("!i", raw, pos)
            pos += 4
            if size == -1:
                items.append(None)
                continue
            if size < 0 or pos + size > len(raw):
                raise BadValue("is not a valid binary array")
            items.append(_from_binary(raw[pos:pos + size], element))
            pos += size
    except struct.error:
        raise BadValue("is not a valid binary array") from None
    if pos != len(raw):
        raise BadValue("is not a valid binary array")
    return items


# ---- results out --------------------------------------------------------------------------

def oid_of_value(value: object) -> int | None:
    """The type a Python result value suggests (None for NULL)."""
    if value is None:
        return None
    for kind, oid in _VALUE_OIDS:
        if isinstance(value, kind):
            return oid
    if isinstance(value, list):
        inner = next((oid_of_value(v) for v in value if v is not None), TEXT)
        return ARRAY_OF.get(inner or TEXT, TEXT)
    return TEXT


_VALUE_OIDS: tuple[tuple[type, int], ...] = (
    (bool, BOOL), (int, INT8), (float, FLOAT8), (Decimal, NUMERIC), (str, TEXT),
    (dt.datetime, TIMESTAMPTZ), (dt.date, DATE), (uuid.UUID, UUID), (dict, JSONB),
    (bytes, BYTEA),
)


def encode_text(value: object) -> bytes:
    """A value in PostgreSQL's text output format."""
    return _text(value).encode("utf-8")


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, dt.datetime):
        text = value.isoformat(sep=" ")
        return text[:-3] if text.endswith(":00") and value.utcoffset() is not None else text
    if isinstance(value, dt.date | dt.time | uuid.UUID | Decimal | int):
        return str(value)
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "{" + ",".join(_array_element(v) for v in value) + "}"
    return str(value)


def _array_element(value: object) -> str:
    if value is None:
        return "NULL"
    text = _text(value)
    if isinstance(value, list):
        return text
    if text == "" or text.upper() == "NULL" or any(c in '{},"\\' or c.isspace() for c in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def encoder(oid: int, fmt: int) -> Callable[[Any], bytes]:
    """How to write a column's non-NULL values, chosen once for all its rows."""
    if fmt == 0:
        return encode_text
    if oid in ELEMENT_OF:
        return lambda value: encode_binary(value, oid)
    return _BINARY_OUT.get(oid, encode_text)


def encode_binary(value: object, oid: int) -> bytes:
    if oid in ELEMENT_OF:
        if not isinstance(value, list):
            raise ValueError("an array column holds a non-list value")
        return _array_binary(value, ELEMENT_OF[oid])
    writer = _BINARY_OUT.get(oid)
    if writer is None:
        return encode_text(value)
    return writer(value)


def _numeric_out(value: Any) -> bytes:
    number = Decimal(value)
    if number.is_nan():
        return struct.pack("!hhHh", 0, 0, 0xC000, 0)
    if number.is_infinite():
        return struct.pack("!hhHh", 0, 0, 0xD000 if number > 0 else 0xF000, 0)
    sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    dscale = max(0, -exponent)
    text = "".join(map(str, digits))
    if exponent < 0:
        text = text.zfill(-exponent + 1)  # at least one digit before the point
    if exponent > 0:
        text += "0" * exponent
        exponent = 0
    whole = text[:len(text) + exponent] if exponent < 0 else text
    frac = text[len(text) + exponent:] if exponent < 0 else ""
    whole = whole.lstrip("0")
    whole = "0" * (-len(whole) % 4) + whole
    frac = frac + "0" * (-len(frac) % 4)
    groups = [int(whole[i:i + 4]) for i in range(0, len(whole), 4)]
    weight = len(groups) - 1
    groups += [int(frac[i:i + 4]) for i in range(0, len(frac), 4)]
    while groups and groups[0] == 0:
        groups.pop(0)
        weight -= 1
    while groups and groups[-1] == 0:
        groups.pop()
    if not groups:
        weight = 0
    return struct.pack(f"!hhHh{len(groups)}h", len(groups), weight, 0x4000 if sign else 0,
                       dscale, *groups)


def _timestamp_out(value: Any) -> bytes:
    if not isinstance(value, dt.datetime):
        raise ValueError("not a timestamp")
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    delta = value - _EPOCH
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    return struct.pack("!q", micros)


def _jsonb_out(value: Any) -> bytes:
    return b"\x01" + encode_text(value)


_BINARY_OUT: dict[int, Callable[[Any], bytes]] = {
    BOOL: lambda v: b"\x01" if v else b"\x00",
    INT2: lambda v: struct.pack("!h", int(v)),
    INT4: lambda v: struct.pack("!i", int(v)),
    INT8: lambda v: struct.pack("!q", int(v)),
    OID: lambda v: struct.pack("!I", int(v)),
    FLOAT4: lambda v: struct.pack("!f", float(v)),
    FLOAT8: lambda v: struct.pack("!d", float(v)),
    NUMERIC: _numeric_out,
    DATE: lambda v: struct.pack("!i", (v - _EPOCH_DATE).days),
    TIMESTAMPTZ: _timestamp_out, TIMESTAMP: _timestamp_out,
    UUID: lambda v: uuid.UUID(str(v)).bytes,
    BYTEA: lambda v: bytes(v),
    CHAR: lambda v: str(v).encode("utf-8"),
    JSONB: _jsonb_out,
}


def _array_binary(values: list[object], element: int) -> bytes:
    has_null = any(v is None for v in values)
    head = struct.pack("!iiIii", 1, int(has_null), element, len(values), 1)
    parts = [head] if values else [struct.pack("!iiI", 0, 0, element)]
    for v in values:
        if v is None:
            parts.append(struct.pack("!i", -1))
        else:
            data = encode_binary(v, element)
            parts.append(struct.pack("!i", len(data)) + data)
    return b"".join(parts)
