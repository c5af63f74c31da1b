"""Parquet export: the same events as JSONL, in row groups, verifiable alone or mixed with JSONL."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from querygate import audit
from querygate.audit._archive import merged, read_events, verify_export
from querygate.audit._parquet import ParquetWriter, read_parquet
from tests.audit.conftest import Log, append, checkpoint, event

pytestmark = pytest.mark.anyio


async def _lines(log: Log, since: dt.datetime | None = None,
                 until: dt.datetime | None = None) -> list[dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(log.gateway_url, autocommit=True) as conn:
        return [line async for line in audit.export(conn, since=since, until=until)]


def _parquet(path: Path, lines: list[dict[str, Any]], row_group: int = 4) -> Path:
    with ParquetWriter(path, row_group=row_group) as writer:
        for line in lines:
            writer.add(line)
    return path


def _jsonl(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return path


def _rewrite(path: Path, change: Any) -> None:
    """An archive edited with ordinary tools: read the table, change it, write it back."""
    table = change(pq.read_table(path))
    pq.write_table(table, path)


async def test_parquet_reads_back_as_the_exported_lines(log: Log, tmp_path: Path) -> None:
    odd = [event(n, reason=None, actor_id=None, client_addr=None, policy_version=None,
                 parameters={"q": "Zoë ✓ \t\"quoted\"\\", "nested": {"a": [1, True, None]}},
                 context={"on_behalf_of": "agent"}, subjects=(), duration_us=n * 1_000_001)
           for n in range(3)]
    await append(log.gateway_url, [*odd, *(event(n) for n in range(3, 10))])
    lines = await _lines(log)
    path = _parquet(tmp_path / "all.parquet", lines)
    meta = pq.ParquetFile(path).metadata
    assert meta.num_rows == 10 and meta.num_row_groups == 3  # 4 + 4 + 2
    back = list(read_parquet(path))
    assert back == lines
    assert [orjson.dumps(b) for b in back] == [orjson.dumps(line) for line in lines]
    assert not (tmp_path / "all.parquet.tmp").exists()
    types = pq.read_schema(path)
    assert types.field("occurred_at").type == pa.timestamp("us", tz="UTC")
    assert types.field("parameters").type == pa.json_() and types.field("hash").type == pa.binary()
    result = verify_export(read_events(path))
    assert result.ok and result.checked == 10 and result.head_seq == 10


async def test_months_in_parquet_and_jsonl_verify_together(log: Log, tmp_path: Path) -> None:
    march = [event(n, occurred_at=dt.datetime(2026, 3, 31, 23, tzinfo=dt.UTC)
                   + dt.timedelta(minutes=20 * n)) for n in range(6)]
    await append(log.gateway_url, march)
    signed = await checkpoint(log)
    cut = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    first = _parquet(tmp_path / "2026-03.parquet", await _lines(log, until=cut))
    second = _jsonl(tmp_path / "2026-04.jsonl", await _lines(log, since=cut))
    both = verify_export(merged([second, first]), [signed])
    assert both.ok and both.checked == 6 and both.checkpoints == 1 and both.head_seq == 6
    as_parquet = _parquet(tmp_path / "2026-04.parquet", await _lines(log, since=cut))
    alone = verify_export(merged([as_parquet]), [signed])
    assert alone.ok and alone.start_seq == 3 and alone.checkpoints == 1
    other = dataclasses.replace(signed, head_hash="00" * 32)  # a checkpoint of another history
    differs = verify_export(merged([first, as_parquet]), [other])
    assert not differs.ok and differs.first_bad_seq == 6 and "signed checkpoint" in (differs.problem or "")


@pytest.mark.parametrize(("change", "bad_seq", "problem"), [
    (lambda t: _set(t, "reason", 2, "edited in the archive"), 3, "a field was edited"),
    (lambda t: _set(t, "parameters", 2, '{"customer_id":99}'), 3, "a field was edited"),
    (lambda t: _set(t, "occurred_at", 2, t["occurred_at"][2].as_py()
                    + dt.timedelta(microseconds=1)), 3, "a field was edited"),
    (lambda t: _set(t, "duration_us", 4, 3101), 5, "a field was edited"),
    (lambda t: t.filter(pa.array([i != 1 for i in range(t.num_rows)])), 3, "jumps from 1 to 3"),
    (lambda t: t.take([0, 2, 1, 3, 4]), 3, "jumps from 1 to 3"),
])
async def test_an_edited_or_dropped_parquet_row_is_named(log: Log, tmp_path: Path, change: Any,
                                                         bad_seq: int, problem: str) -> None:
    await append(log.gateway_url, [event(n) for n in range(5)])
    path = _parquet(tmp_path / "all.parquet", await _lines(log))
    _rewrite(path, change)
    result = verify_export(merged([path]))
    assert not result.ok and result.first_bad_seq == bad_seq and problem in (result.problem or "")


def _set(table: pa.Table, column: str, row: int, value: Any) -> pa.Table:
    values = table[column].to_pylist()
    values[row] = value
    index = table.schema.get_field_index(column)
    return table.set_column(index, table.schema.field(index),
                            pa.array(values, type=table.schema.field(index).type))


async def test_a_parquet_file_without_the_exact_columns_is_refused(log: Log, tmp_path: Path) -> None:
    await append(log.gateway_url, [event(n) for n in range(2)])
    path = _parquet(tmp_path / "all.parquet", await _lines(log))
    _rewrite(path, lambda t: t.drop_columns(["content_hash"]))
    with pytest.raises(ValueError, match="lacks the column content_hash"):
        list(read_events(path))
