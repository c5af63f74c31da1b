"""Exported JSONL verifies on its own, merged across months, against the signed checkpoints."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from querygate import audit
from querygate.audit import merged, verify_export
from tests.audit.conftest import Log, append, checkpoint, event

pytestmark = pytest.mark.anyio


async def _export(log: Log, path: Path, since: dt.datetime | None = None,
                  until: dt.datetime | None = None) -> list[dict[str, Any]]:
    lines = []
    async with await psycopg.AsyncConnection.connect(log.gateway_url, autocommit=True) as conn:
        async for line in audit.export(conn, since=since, until=until):
            lines.append(line)
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return lines


async def test_months_export_and_verify_together(log: Log, tmp_path: Path) -> None:
    march = [event(n, occurred_at=dt.datetime(2026, 3, 31, 23, tzinfo=dt.UTC)
                   + dt.timedelta(minutes=20 * n)) for n in range(6)]
    await append(log.gateway_url, march)
    signed = await checkpoint(log)
    cut = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    first = await _export(log, tmp_path / "2026-03.jsonl", until=cut)
    second = await _export(log, tmp_path / "2026-04.jsonl", since=cut)
    assert [e["seq"] for e in first] == [1, 2, 3] and [e["seq"] for e in second] == [4, 5, 6]
    assert {"occurred_at", "duration_ms", "occurred_at_us", "duration_us", "content_hash"} <= set(first[0])
    both = verify_export(merged([tmp_path / "2026-04.jsonl", tmp_path / "2026-03.jsonl"]), [signed])
    assert both.ok and both.checked == 6 and both.checkpoints == 1 and both.head_seq == 6
    alone = verify_export(merged([tmp_path / "2026-04.jsonl"]), [signed])
    assert alone.ok and alone.start_seq == 3 and alone.checkpoints == 1


async def test_an_edited_or_missing_line_is_named(log: Log, tmp_path: Path) -> None:
    await append(log.gateway_url, [event(n) for n in range(5)])
    lines = await _export(log, tmp_path / "all.jsonl")
    lines[2]["reason"] = "edited in the archive"
    edited = verify_export(lines)
    assert not edited.ok and edited.first_bad_seq == 3 and "edited" in (edited.problem or "")
    gap = verify_export([line for line in lines if line["seq"] != 2])
    assert not gap.ok and gap.first_bad_seq == 3 and "jumps" in (gap.problem or "")
    old_form = [{k: v for k, v in line.items() if k != "occurred_at_us"} for line in lines]
    assert "export it again" in (verify_export(old_form).problem or "")
