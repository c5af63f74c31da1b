"""A batch's columns in PostgreSQL's binary array format, built directly.

psycopg dumps a Python list by first finding its element type and then dumping each element
through its own dumper; for the 18 one-element arrays of a lone event that cost more CPU than
the rest of the append. The writer knows each column's type, so it builds the arrays' bytes
itself (the layout of ``array_send``) and psycopg passes them through with the array's oid.
"""

from __future__ import annotations

import datetime as dt
import struct
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg.abc import AdaptContext
from psycopg.adapt import Dumper
from psycopg.pq import Format

_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # PostgreSQL's timestamp epoch
_HEADER = struct.Struct("!iiIii")  # dimensions, has nulls, element oid, length, lower bound
_INT4 = struct.Struct("!i")
_INT8 = struct.Struct("!q")


class BinaryArray:
    """A one-dimensional array already in binary form; a subclass per array type."""

    __slots__ = ("data",)
    element_oid = 0
    oid = 0

    def __init__(self, data: bytes) -> None:
        self.data = data


class _Texts(BinaryArray):
    element_oid, oid = 25, 1009


class _Uuids(BinaryArray):
    element_oid, oid = 2950, 2951


class _Timestamps(BinaryArray):
    element_oid, oid = 1184, 1185


class _Int4s(BinaryArray):
    element_oid, oid = 23, 1007


class _Int8s(BinaryArray):
    element_oid, oid = 20, 1016


class _Byteas(BinaryArray):
    element_oid, oid = 17, 1001


class _Jsons(BinaryArray):
    element_oid, oid = 114, 199


class _Jsonbs(BinaryArray):
    element_oid, oid = 3802, 3807


class BinaryArrayDumper(Dumper):
    """Passes a ``BinaryArray``'s bytes through, typed with its class's oid."""

    format = Format.BINARY

    def __init__(self, cls: type, context: AdaptContext | None = None) -> None:
        super().__init__(cls, context)
        self.oid = cls.oid if issubclass(cls, BinaryArray) else 0

    def dump(self, obj: BinaryArray) -> bytes:
        return obj.data


for _kind in (_Texts, _Uuids, _Timestamps, _Int4s, _Int8s, _Byteas, _Jsons, _Jsonbs):
    psycopg.adapters.register_dumper(_kind, BinaryArrayDumper)


def _text(value: str) -> bytes:
    data = value.encode()
    if b"\x00" in data:  # as psycopg's own dumper: PostgreSQL text cannot hold NUL
        raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
    return data


def _micros(moment: dt.datetime) -> int:
    delta = moment.astimezone(dt.UTC) - _EPOCH
    return delta.microseconds + 1_000_000 * (86_400 * delta.days + delta.seconds)


def _array(kind: type[BinaryArray], values: Sequence[Any],
           encode: Callable[[Any], bytes]) -> BinaryArray:
    parts = [_HEADER.pack(1, 0, kind.element_oid, len(values), 1)]
    nulls = 0
    for value in values:
        if value is None:
            parts.append(b"\xff\xff\xff\xff")
            nulls = 1
        else:
            data = encode(value)
            parts.append(_INT4.pack(len(data)))
            parts.append(data)
    if nulls:
        parts[0] = _HEADER.pack(1, 1, kind.element_oid, len(values), 1)
    return kind(b"".join(parts))


def texts(values: Sequence[str | None]) -> BinaryArray:
    return _array(_Texts, values, _text)


def uuids(values: Sequence[uuid.UUID]) -> BinaryArray:
    return _array(_Uuids, values, lambda u: u.bytes)


def timestamps(values: Sequence[dt.datetime]) -> BinaryArray:
    return _array(_Timestamps, values, lambda m: _INT8.pack(_micros(m)))


def int4s(values: Sequence[int]) -> BinaryArray:
    return _array(_Int4s, values, _INT4.pack)


def int8s(values: Sequence[int]) -> BinaryArray:
    return _array(_Int8s, values, _INT8.pack)


def byteas(values: Sequence[bytes]) -> BinaryArray:
    return _array(_Byteas, values, bytes)


def jsons(values: Sequence[bytes]) -> BinaryArray:
    """``json`` documents, given as their UTF-8 text, kept by the server as given."""
    return _array(_Jsons, values, _checked_json)


def jsonbs(values: Sequence[bytes]) -> BinaryArray:
    """``jsonb`` documents, given as their UTF-8 text (binary jsonb is version 1, then text)."""
    return _array(_Jsonbs, values, lambda text: b"\x01" + _checked_json(text))


def _checked_json(text: bytes) -> bytes:
    if b"\x00" in text:
        raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
    return text
