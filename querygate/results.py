"""What a call hands back: rows in memory, or a spool of JSON lines for an export."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from typing import IO, Protocol

import orjson

from querygate import audit


def _line(row: list[object]) -> bytes:
    return orjson.dumps(row, default=str, option=orjson.OPT_APPEND_NEWLINE)


class Sink(Protocol):
    def write(self, rows: list[list[object]]) -> None: ...


class Collected:
    """Masked rows kept in memory: an ordinary call."""

    def __init__(self) -> None:
        self.rows: list[list[object]] = []

    def write(self, rows: list[list[object]]) -> None:
        self.rows.extend(rows)


class Spool:
    """Masked rows written to a temporary file as JSON lines: an export, memory kept flat."""

    def __init__(self) -> None:
        self.file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the reader
        self.count = 0

    def write(self, rows: list[list[object]]) -> None:
        self.file.write(b"".join(map(_line, rows)))
        self.count += len(rows)

    def rewound(self) -> IO[bytes]:
        self.file.seek(0)
        return self.file

    def close(self) -> None:
        self.file.close()


@dataclass(frozen=True)
class Outcome:
    columns: list[str]
    truncated: bool
    receipt: audit.Receipt


@dataclass(frozen=True)
class Export:
    """A finished, audited export: read ``rows_file`` (JSON lines), then close it."""

    columns: list[str]
    fields: dict[str, str]
    rows: int
    truncated: bool
    receipt: audit.Receipt
    rows_file: IO[bytes]


@dataclass(frozen=True)
class CallResult:
    columns: list[str]
    rows: list[list[object]]
    fields: dict[str, str]
    truncated: bool
    receipt: audit.Receipt
