"""Archived months answer in place: `audit subject` and `audit search` span the live store and
the Parquet archives (read by DuckDB), each file verified against the signed checkpoints first;
an edited or unanchored archive is an error naming the file."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import orjson
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from querygate.audit._archive import verify_export
from tests.audit.conftest import Log, append, checkpoint, event
from tests.audit.test_cli_archive import invoke, project

START = dt.datetime(2026, 3, 5, 9, tzinfo=dt.UTC)
EVENTS = [event(n, occurred_at=START + dt.timedelta(days=7 * n)) for n in range(12)]  # Mar-May


def archived_log(log: Log, tmp_path: Path) -> Path:
    """12 events over March to May, signed; March and April exported to Parquet, then their
    partitions detached from the live store. Returns the project folder."""
    with psycopg.connect(log.admin_url, autocommit=True) as conn:
        for month in ("2026-03-01", "2026-04-01", "2026-05-01"):
            conn.execute("SELECT querygate.audit_add_month(%s)", (month,))
    asyncio.run(append(log.gateway_url, EVENTS))
    asyncio.run(checkpoint(log))
    folder = project(log, tmp_path / "project")
    (folder / "archive").mkdir()
    for month, start, end in (("03", "2026-03-01", "2026-04-01"),
                              ("04", "2026-04-01", "2026-05-01")):
        code, _, err = invoke(folder, "audit", "export", "--from", start, "--to", end,
                              "--format", "parquet", "--out",
                              str(folder / "archive" / f"2026-{month}.parquet"))
        assert code == 0, err
    with psycopg.connect(log.admin_url, autocommit=True) as conn:
        for month in ("03", "04"):
            for table in ("audit_events", "audit_subjects"):
                conn.execute(f"ALTER TABLE querygate.{table} DETACH PARTITION "
                             f"querygate.{table}_y2026m{month}")
        live = conn.execute("SELECT count(*) FROM querygate.audit_events").fetchone()
    assert live == (3,)  # May only: the rest is in the archives
    config = yaml.safe_load((folder / "querygate.yaml").read_text())
    config["audit"] = {"archives": ["archive/*.parquet"], "archive_cache": str(tmp_path / "cache")}
    (folder / "querygate.yaml").write_text(yaml.safe_dump(config))
    return folder


def seqs(out: str) -> list[int]:
    return [orjson.loads(line)["seq"] for line in out.splitlines()]


def test_subject_and_search_span_the_live_store_and_the_archives(log: Log,
                                                                   tmp_path: Path) -> None:
    folder = archived_log(log, tmp_path)
    code, out, err = invoke(folder, "audit", "subject", "customer:3", "--json")
    assert code == 0, err
    wanted = [n + 1 for n in range(12) if n % 7 == 3]  # seq = n + 1
    assert seqs(out) == sorted(wanted, reverse=True) and len(wanted) == 2
    assert orjson.loads(out.splitlines()[-1])["occurred_at"] == "2026-03-26T09:00:00.000Z"

    code, out, err = invoke(folder, "audit", "search", "--user", "alex@example.com", "--json",
                            "--limit", "5")
    assert code == 0, err
    assert seqs(out) == [12, 11, 10, 9, 8]
    code, out, _ = invoke(folder, "audit", "search", "--from", "2026-03-20", "--to",
                          "2026-04-20", "--json")
    assert seqs(out) == [7, 6, 5, 4]  # Mar 26 .. Apr 16, all archived
    code, out, _ = invoke(folder, "audit", "search", "--json", "--limit", "100")
    assert code == 0 and seqs(out) == list(range(12, 0, -1))
    # every line, archived or live, is the event as it was written: the chain recomputes
    whole = verify_export([orjson.loads(line) for line in reversed(out.splitlines())])
    assert whole.ok and whole.checked == 12, whole
    assert (tmp_path / "cache" / "archives-verified.json").exists()  # walked once per file


@pytest.mark.parametrize("column, row", [("reason", 1), ("subjects", 0)])
def test_an_edited_archive_is_an_error_naming_the_file(log: Log, tmp_path: Path, column: str,
                                                       row: int) -> None:
    folder = archived_log(log, tmp_path)
    assert invoke(folder, "audit", "subject", "customer:3")[0] == 0  # verified and cached
    path = folder / "archive" / "2026-04.parquet"
    table = pq.read_table(path)
    values = table.column(column).to_pylist()
    values[row] = "edited" if column == "reason" else '[{"type":"customer","id":"3"}]'
    index = table.schema.get_field_index(column)
    array = pa.array(values, type=table.schema.field(column).type.storage_type
                     if column == "subjects" else pa.string())
    if column == "subjects":
        array = pa.ExtensionArray.from_storage(table.schema.field(column).type, array)
    pq.write_table(table.set_column(index, table.schema.field(column), array), path)
    code, out, err = invoke(folder, "audit", "subject", "customer:3")
    assert code == 1 and out == ""
    assert str(path) in err and "fails verification at event seq" in err
    assert "a field was edited" in err


def test_archives_without_a_checkpoint_after_them_are_refused(log: Log, tmp_path: Path) -> None:
    folder = archived_log(log, tmp_path)
    for signed in log.config.folder.iterdir():
        signed.unlink()
    code, _, err = invoke(folder, "audit", "search", "--user", "alex@example.com")
    assert code == 1 and "no signed checkpoint vouches for archive" in err
    assert "2026-04.parquet" in err


def test_a_missing_month_between_archives_is_named(log: Log, tmp_path: Path) -> None:
    folder = archived_log(log, tmp_path)
    (folder / "archive" / "2026-04.parquet").rename(folder / "2026-04.parquet")
    code, _, err = invoke(folder, "audit", "subject", "customer:3")
    assert code == 1 and "does not link to the live log" in err and "2026-03.parquet" in err


def test_the_subject_access_report_spans_the_archives(log: Log, tmp_path: Path) -> None:
    """The GDPR report lists the archived accesses with the live ones, each checked; with the
    months detached, the live log is verified from the newest checkpoint (--quick)."""
    folder = archived_log(log, tmp_path)
    code, out, err = invoke(folder, "reports", "subject-access", "customer:3", "--quick",
                            "--format", "json")
    assert code == 0, err
    report = orjson.loads(out)
    accesses = next(s for s in report["sections"] if s["title"].startswith("Accesses"))
    assert len(accesses["rows"]) == 2  # both in March and April: archived
    assert any(str(v).startswith("2026-03-26") for r in accesses["rows"] for v in r.values())
    assert any("2 of 2 intact" in d for d in report["integrity"]["details"]), report["integrity"]
    assert report["integrity"]["ok"] is True, report["integrity"]
