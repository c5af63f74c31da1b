"""Parquet export: the JSONL export's events in typed columns, written in bounded row groups.

A file holds exactly what an exported line holds that the chain needs: ``seq``, the content
with the exact hashed values (``occurred_at`` as a UTC timestamp in microseconds, ``duration_us``,
``policy_version``), and ``content_hash``, ``prev_hash``, ``hash`` (32 bytes each). JSON-valued
fields (``parameters``, ``fields``, ``subjects``, ``context``) are kept as JSON text (Parquet's
JSON type), so the values that were hashed come back unchanged. Reading a file gives the JSONL
export's lines again, so ``audit verify --export`` checks both forms alike. pyarrow is imported
only here (``pip install 'querygate[parquet]'``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

MAGIC = b"PAR1"
ROW_GROUP = 20_000  # events per row group: what the writer holds in memory at most
_JSON = ("parameters", "fields", "subjects", "context")
_TEXT = ("event_id", "actor_id", "actor_email", "function_name", "decision", "reason",
         "error_code", "client_addr", "policy_version")
_HASHES = ("content_hash", "prev_hash", "hash")
_PLAIN = ("seq", "actor_roles", "rows_returned", "duration_us", *_TEXT)
# The columns, in the order of the log's table (querygate.audit._read.COLUMNS).
_ORDER = ("seq", "event_id", "occurred_at", "actor_id", "actor_email", "actor_roles",
          "function_name", "parameters", "decision", "reason", "error_code", "rows_returned",
          "fields", "subjects", "client_addr", "duration_us", "context", "policy_version",
          "content_hash", "prev_hash", "hash")


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.compute
        import pyarrow.parquet
    except ImportError:
        raise ValueError("Parquet needs pyarrow: pip install 'querygate[parquet]'") from None
    return pyarrow


def schema() -> Any:
    """The Arrow schema of an exported Parquet file."""
    pa = _pyarrow()
    kinds = {"seq": pa.int64(), "occurred_at": pa.timestamp("us", tz="UTC"),
             "actor_roles": pa.list_(pa.string()), "rows_returned": pa.int64(),
             "duration_us": pa.int64()}
    kinds |= {name: pa.json_() for name in _JSON} | {name: pa.string() for name in _TEXT}
    kinds |= {name: pa.binary() for name in _HASHES}
    required = {"seq", "event_id", "occurred_at", "function_name", "decision", *_HASHES}
    return pa.schema([pa.field(name, kinds[name], nullable=name not in required)
                      for name in _ORDER], metadata={"querygate": "audit-export-v1"})


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # integers past 64 bits
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class ParquetWriter:
    """Writes exported lines to ``path`` one row group at a time; the file appears (renamed
    from ``path.tmp``) only when ``close`` completes, so a failed export leaves no file."""

    def __init__(self, path: Path, row_group: int = ROW_GROUP) -> None:
        pa = _pyarrow()
        self.path, self.row_group, self.count, self.groups = path, row_group, 0, 0
        self._temporary = path.with_name(path.name + ".tmp")
        self._schema = schema()
        self._writer = pa.parquet.ParquetWriter(self._temporary, self._schema, compression="zstd")
        self._buffer: dict[str, list[Any]] = {name: [] for name in _ORDER}

    def add(self, line: Mapping[str, Any]) -> None:
        """One exported line, from its exact fields (``occurred_at_us``, not ``occurred_at``)."""
        buffer = self._buffer
        for name in _PLAIN:
            buffer[name].append(line.get(name))
        buffer["occurred_at"].append(dt.datetime.fromisoformat(line["occurred_at_us"]))
        for name in _JSON:
            buffer[name].append(_json_text(line.get(name)))
        for name in _HASHES:
            buffer[name].append(bytes.fromhex(line[name]))
        self.count += 1
        if len(buffer["seq"]) >= self.row_group:
            self._flush()

    def _flush(self) -> None:
        if self._buffer["seq"]:
            table = _pyarrow().Table.from_pydict(self._buffer, schema=self._schema)
            self._writer.write_table(table, row_group_size=self.row_group)
            self.groups += 1
            self._buffer = {name: [] for name in _ORDER}

    def close(self) -> None:
        self._flush()
        self._writer.close()
        os.replace(self._temporary, self.path)

    def __enter__(self) -> ParquetWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if kind is None:
            self.close()
            return
        self._writer.close()
        with contextlib.suppress(OSError):
            self._temporary.unlink()


def is_parquet(path: Path) -> bool:
    """Parquet files begin with ``PAR1``; JSONL export files begin with ``{``."""
    with path.open("rb") as head:
        return head.read(4) == MAGIC


def read_parquet(path: Path, batch: int = 10_000) -> Iterator[dict[str, Any]]:
    """The events of one Parquet export, in file order, as the JSONL export's lines."""
    pa = _pyarrow()
    try:
        source = pa.parquet.ParquetFile(path)
    except (pa.ArrowException, OSError):
        raise ValueError(f"{path.name} is not a readable Parquet file") from None
    missing = [name for name in _ORDER if name not in source.schema_arrow.names]
    if missing:
        raise ValueError(f"{path.name} lacks the column {missing[0]} (not a querygate export)")
    for rows in source.iter_batches(batch_size=batch, columns=list(_ORDER)):
        yield from _lines(pa, rows)


def _lines(pa: Any, batch: Any) -> Iterator[dict[str, Any]]:
    """A record batch as lines; the exact time is formatted by Arrow, column by column."""
    columns = {name: _values(pa, batch.column(name)) for name in _ORDER if name != "occurred_at"}
    columns["occurred_at"] = pa.compute.strftime(batch.column("occurred_at"),
                                                 format="%Y-%m-%dT%H:%M:%SZ").to_pylist()
    for values in zip(*(columns[name] for name in _ORDER), strict=True):
        yield _line(dict(zip(_ORDER, values, strict=True)))


def _values(pa: Any, column: Any) -> list[Any]:
    """A column as Python values; JSON text read from its storage (many times faster)."""
    values: list[Any] = (column.storage if isinstance(column, pa.ExtensionArray)
                         else column).to_pylist()
    return values


def _line(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the JSONL line it was made from (``StoredEvent.export``'s keys, in its order);
    a row that cannot be one becomes a line lacking the exact fields, which ``verify_export``
    names by its ``seq``."""
    try:
        exact = row["occurred_at"]  # as timestamp() writes it: microseconds, UTC, Z
        values = {name: _json_value(row[name]) for name in _JSON}
        if not all(isinstance(s, dict) for s in values["subjects"]):
            raise TypeError("a subject is not an object")
        return {
            "seq": row["seq"], "event_id": row["event_id"], "occurred_at": exact[:23] + "Z",
            "actor_id": row["actor_id"], "actor_email": row["actor_email"],
            "actor_roles": row["actor_roles"] or [], "function_name": row["function_name"],
            "parameters": values["parameters"], "decision": row["decision"],
            "reason": row["reason"], "error_code": row["error_code"],
            "rows_returned": row["rows_returned"], "fields": values["fields"],
            "subjects": values["subjects"],
            "client": (values["context"] or {}).get("client"), "client_addr": row["client_addr"],
            "duration_ms": round(row["duration_us"] / 1000, 3), "context": values["context"],
            "prev_hash": row["prev_hash"].hex(), "hash": row["hash"].hex(),
            "occurred_at_us": exact, "duration_us": row["duration_us"],
            "policy_version": row["policy_version"], "content_hash": row["content_hash"].hex(),
        }
    except (AttributeError, KeyError, TypeError, ValueError):
        if not isinstance(row.get("seq"), int):
            raise ValueError("a row of the Parquet file has no seq") from None
        return {"seq": row["seq"]}


def _json_value(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)  # integers past 64 bits; anything else raises ValueError
