"""PostgreSQL protocol 3.0 framing: reading bounded messages, building backend messages.

Every length a client sends is checked against a bound before a byte of its body is read,
so a packet that claims a gigabyte is refused without allocating it.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Sequence
from dataclasses import dataclass

PROTOCOL_3_0 = 196608
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
MAX_STARTUP_BYTES = 10_000  # PostgreSQL's own limit for the startup packet

_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_U32 = struct.Struct("!I")


class ProtocolViolation(Exception):
    """The client broke the protocol; the connection is answered with 08P01 and closed."""


@dataclass(frozen=True)
class Startup:
    """The first packet: a startup message, an SSL/GSS request, or a cancel request."""

    code: int
    params: dict[str, str]
    cancel_key: tuple[int, int] | None = None


async def read_startup(reader: asyncio.StreamReader) -> Startup:
    (length,) = _I32.unpack(await reader.readexactly(4))
    if not 8 <= length <= MAX_STARTUP_BYTES:
        raise ProtocolViolation(f"invalid startup packet length {length}")
    body = await reader.readexactly(length - 4)
    (code,) = _I32.unpack_from(body, 0)
    if code == CANCEL_REQUEST:
        if length != 16:
            raise ProtocolViolation("invalid cancel request")
        pid, key = struct.unpack_from("!ii", body, 4)
        return Startup(code, {}, (pid, key))
    if code in (SSL_REQUEST, GSSENC_REQUEST):
        if length != 8:
            raise ProtocolViolation("invalid SSL request")
        return Startup(code, {})
    if code != PROTOCOL_3_0:
        raise ProtocolViolation(f"unsupported frontend protocol {code >> 16}.{code & 0xFFFF}: "
                                "querygate speaks 3.0")
    return Startup(code, _startup_params(body[4:]))


def _startup_params(data: bytes) -> dict[str, str]:
    if not data.endswith(b"\x00"):
        raise ProtocolViolation("startup packet is not terminated")
    parts = data[:-1].split(b"\x00")
    if parts and parts[-1] == b"":
        parts.pop()
    if len(parts) % 2:
        raise ProtocolViolation("startup packet has a name without a value")
    try:
        words = [p.decode("utf-8") for p in parts]
    except UnicodeDecodeError:
        raise ProtocolViolation("startup packet is not UTF-8") from None
    return dict(zip(words[::2], words[1::2], strict=True))


async def read_message(reader: asyncio.StreamReader, max_bytes: int) -> tuple[bytes, bytes]:
    """One frontend message: (type byte, body); a length past ``max_bytes`` is refused unread."""
    head = await reader.readexactly(5)
    (length,) = _I32.unpack_from(head, 1)
    if length < 4:
        raise ProtocolViolation(f"invalid message length {length}")
    if length - 4 > max_bytes:
        raise ProtocolViolation(f"message of {length} bytes is over the limit of {max_bytes}")
    return head[:1], await reader.readexactly(length - 4)


class Cursor:
    """Reads the fields of one message body; running off its end is a protocol violation."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def _take(self, size: int) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise ProtocolViolation("message is shorter than its fields")
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def int16(self) -> int:
        return int(_I16.unpack(self._take(2))[0])

    def int32(self) -> int:
        return int(_I32.unpack(self._take(4))[0])

    def uint32(self) -> int:
        return int(_U32.unpack(self._take(4))[0])

    def byte(self) -> bytes:
        return self._take(1)

    def cstring(self) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise ProtocolViolation("string is not terminated")
        raw = self.data[self.pos:end]
        self.pos = end + 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolViolation("string is not valid UTF-8") from None

    def value(self) -> bytes | None:
        """A length-prefixed value (-1: NULL)."""
        size = self.int32()
        if size == -1:
            return None
        if size < -1:
            raise ProtocolViolation("negative value length")
        return self._take(size)

    def done(self) -> None:
        if self.pos != len(self.data):
            raise ProtocolViolation("message has trailing bytes")


def message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + _I32.pack(len(body) + 4) + body


def cstr(text: str) -> bytes:
    return text.replace("\x00", "").encode("utf-8") + b"\x00"


def authentication(code: int) -> bytes:
    return message(b"R", _I32.pack(code))


def parameter_status(name: str, value: str) -> bytes:
    return message(b"S", cstr(name) + cstr(value))


def backend_key_data(pid: int, key: int) -> bytes:
    return message(b"K", struct.pack("!ii", pid, key))


def ready_for_query(status: bytes) -> bytes:
    return message(b"Z", status)


def command_complete(tag: str) -> bytes:
    return message(b"C", cstr(tag))


@dataclass(frozen=True)
class Field:
    """One column of a RowDescription."""

    name: str
    type_oid: int
    type_size: int = -1
    table_oid: int = 0
    column: int = 0
    type_mod: int = -1


def row_description(fields: Sequence[Field], formats: Sequence[int]) -> bytes:
    parts = [_I16.pack(len(fields))]
    for f, fmt in zip(fields, formats, strict=True):
        parts.append(cstr(f.name) + struct.pack("!ihihih", f.table_oid, f.column, f.type_oid,
                                                 f.type_size, f.type_mod, fmt))
    return message(b"T", b"".join(parts))


def data_row(values: Sequence[bytes | None]) -> bytes:
    parts = [_I16.pack(len(values))]
    for v in values:
        parts.append(_I32.pack(-1) if v is None else _I32.pack(len(v)) + v)
    return message(b"D", b"".join(parts))


def parameter_description(oids: Sequence[int]) -> bytes:
    return message(b"t", _I16.pack(len(oids)) + b"".join(_U32.pack(o) for o in oids))


def _fields(severity: str, sqlstate: str, text: str, detail: str | None,
            hint: str | None) -> bytes:
    parts = [b"S" + cstr(severity), b"V" + cstr(severity), b"C" + cstr(sqlstate),
             b"M" + cstr(text)]
    if detail:
        parts.append(b"D" + cstr(detail))
    if hint:
        parts.append(b"H" + cstr(hint))
    return b"".join(parts) + b"\x00"


def error_response(sqlstate: str, text: str, *, severity: str = "ERROR",
                   detail: str | None = None, hint: str | None = None) -> bytes:
    return message(b"E", _fields(severity, sqlstate, text, detail, hint))


def notice_response(text: str, *, sqlstate: str = "00000", detail: str | None = None) -> bytes:
    return message(b"N", _fields("NOTICE", sqlstate, text, detail, None))


PARSE_COMPLETE = message(b"1")
BIND_COMPLETE = message(b"2")
CLOSE_COMPLETE = message(b"3")
NO_DATA = message(b"n")
EMPTY_QUERY = message(b"I")
PORTAL_SUSPENDED = message(b"s")
AUTH_OK = authentication(0)
AUTH_CLEARTEXT = authentication(3)
