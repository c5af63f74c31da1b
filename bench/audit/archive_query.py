"""`audit subject` and `audit search` over archived Parquet files, read in place by DuckDB.

    .venv/bin/python -m bench.audit.archive_query generate --out /tmp/qg-archive --events 100000000
    .venv/bin/python -m bench.audit.archive_query query --dir /tmp/qg-archive
    .venv/bin/python -m bench.audit.archive_query live --url URL   # a store from bench.audit.load

``generate`` writes synthetic events straight with pyarrow, in the archive schema of
``audit export --format parquet`` (row groups of 20,000 events, zstd), one file per month of
equal size: 1,000 users, 1,000,000 customers, one customer per event. Their hashes are
constant bytes, not a chain: verifying that many events in Python takes hours, and is paid
once per file (its digest is then cached), so ``query`` times the two costs paid on every
question: the SHA-256 of every file (how a cached verification is recognised) and the DuckDB
query itself (``search_archived``). Nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import statistics
import time
from pathlib import Path
from typing import Any

from querygate.audit import Query
from querygate.audit._archived import Archive, digest
from querygate.audit._parquet import ROW_GROUP, _pyarrow, schema
from querygate.audit._spanning import search_archived

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
CHUNK = 1_000_000
CUSTOMERS, USERS = 1_000_000, 1_000


def _chunk(pa: Any, pc: Any, first: int, count: int, span_s: float, total: int) -> Any:
    seq = pa.array(range(first, first + count), pa.int64())
    customer = pc.cast(pc.add(pc.divide(pc.multiply(pc.bit_wise_and(pc.multiply(
        seq, 2654435761), (1 << 32) - 1), CUSTOMERS), 1 << 32), 1), pa.string())
    user = pc.cast(pc.bit_wise_and(pc.multiply(seq, 40503), 1023), pa.string())
    micros = pc.cast(pc.multiply(pc.cast(seq, pa.float64()), span_s * 1e6 / total), pa.int64())
    base = int(START.timestamp() * 1e6)
    occurred = pc.cast(pc.add(micros, base), pa.timestamp("us", tz="UTC"))
    text = pc.binary_join_element_wise
    hashes = pa.array([b"\x11" * 32] * count, pa.binary())
    json = schema().field("subjects").type
    columns = {
        "seq": seq,
        "event_id": text("00000000-0000-4000-8000-", pc.utf8_lpad(pc.cast(seq, pa.string()), 12,
                                                                  "0"), ""),
        "occurred_at": occurred,
        "actor_id": text("usr_", user, ""),
        "actor_email": text("user", user, "@example.com", ""),
        "actor_roles": pa.array([["support"]] * count, pa.list_(pa.string())),
        "function_name": pa.array(["get_customer_by_id"] * count, pa.string()),
        "parameters": text('{"customer_id":', customer, "}", ""),
        "decision": pa.array(["allowed"] * count, pa.string()),
        "reason": text("TICKET-", user, ""),
        "error_code": pa.nulls(count, pa.string()),
        "rows_returned": pa.array([1] * count, pa.int64()),
        "fields": pa.array(['{"email":"allow"}'] * count, pa.string()),
        "subjects": text('[{"type":"customer","id":"', customer, '"}]', ""),
        "client_addr": pa.array(["10.0.0.1"] * count, pa.string()),
        "duration_us": pa.array([3100] * count, pa.int64()),
        "context": pa.array(['{"client":"http"}'] * count, pa.string()),
        "policy_version": pa.array(["pv:bench"] * count, pa.string()),
        "content_hash": hashes, "prev_hash": hashes, "hash": hashes,
    }
    for name in ("parameters", "fields", "subjects", "context"):
        columns[name] = pa.ExtensionArray.from_storage(json, columns[name])
    return pa.Table.from_pydict(columns, schema=schema())


def generate(out: Path, events: int, files: int) -> None:
    pa = _pyarrow()
    pc = pa.compute
    out.mkdir(parents=True, exist_ok=True)
    per_file = events // files
    span_s = files * 30 * 86400.0  # a month per file
    started = time.perf_counter()
    for number in range(files):
        path = out / f"archive-{number:03d}.parquet"
        with pa.parquet.ParquetWriter(path, schema(), compression="zstd") as writer:
            first = 1 + number * per_file
            for offset in range(0, per_file, CHUNK):
                count = min(CHUNK, per_file - offset)
                writer.write_table(_chunk(pa, pc, first + offset, count, span_s, events),
                                   row_group_size=ROW_GROUP)
        print(f"{path.name}: {per_file} events, {path.stat().st_size / 1e6:.0f} MB, "
              f"{time.perf_counter() - started:.0f} s so far", flush=True)


def _timed(what: str, work: Any, runs: int) -> Any:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    print(f"{what}: best {min(times):.2f} s, median {statistics.median(times):.2f} s "
          f"({runs} runs)", flush=True)
    return result


def query(folder: Path, runs: int, customer: str) -> None:
    paths = sorted(folder.glob("*.parquet"))
    pa = _pyarrow()
    rows = sum(pa.parquet.ParquetFile(p).metadata.num_rows for p in paths)
    size = sum(p.stat().st_size for p in paths)
    print(f"{len(paths)} files, {rows} events, {size / 1e9:.2f} GB", flush=True)
    _timed("SHA-256 of every file (the cached verification's check)",
           lambda: [digest(p) for p in paths], runs)
    archives = []
    for p in paths:
        meta = pa.parquet.ParquetFile(p).metadata
        first = pa.parquet.read_table(p, columns=["seq"]).column(0)
        archives.append(Archive(p, hashlib.sha256(str(p).encode()).hexdigest(),
                                int(first[0].as_py()), int(first[meta.num_rows - 1].as_py()),
                                "", ""))
    found = _timed(f"subject customer:{customer}, all time",
                   lambda: search_archived(archives, Query(subject=("customer", customer),
                                                           limit=1000)), runs)
    print(f"  {len(found)} events")
    month = (dt.datetime(2024, 3, 1, tzinfo=dt.UTC), dt.datetime(2024, 4, 1, tzinfo=dt.UTC))
    found = _timed(f"subject customer:{customer}, one month",
                   lambda: search_archived(archives, Query(subject=("customer", customer),
                                                           since=month[0], until=month[1],
                                                           limit=1000)), runs)
    print(f"  {len(found)} events")
    found = _timed("search --user user7@example.com, one month, newest 100",
                   lambda: search_archived(archives, Query(user="user7@example.com",
                                                           since=month[0], until=month[1])),
                   runs)
    print(f"  {len(found)} events")


def live(url: str, runs: int, customer: str) -> None:
    """The same questions to the live store (``audit.search``), for the side-by-side figures."""
    import asyncio

    import psycopg

    from querygate.audit import search

    async def ask(q: Query) -> int:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            return len(await search(conn, q))

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*), min(occurred_at) FROM querygate.audit_events"
                           ).fetchone()
    assert row is not None
    print(f"live store: {row[0]} events from {row[1]:%Y-%m-%d}", flush=True)
    month = (dt.datetime.now(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
             - dt.timedelta(days=62)).replace(day=1)
    until = (month + dt.timedelta(days=32)).replace(day=1)
    for what, q in ((f"subject customer:{customer}, all time",
                     Query(subject=("customer", customer), limit=1000)),
                    (f"subject customer:{customer}, one month",
                     Query(subject=("customer", customer), since=month, until=until, limit=1000)),
                    ("search --user user0007@example.com, one month, newest 100",
                     Query(user="user0007@example.com", since=month, until=until))):
        found = _timed(what, lambda q=q: asyncio.run(ask(q)), runs)
        print(f"  {found} events")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("generate")
    make.add_argument("--out", type=Path, required=True)
    make.add_argument("--events", type=int, default=10_000_000)
    make.add_argument("--files", type=int, default=10)
    ask = sub.add_parser("query")
    ask.add_argument("--dir", type=Path, required=True)
    ask.add_argument("--runs", type=int, default=3)
    ask.add_argument("--customer", default="4242")
    here = sub.add_parser("live")
    here.add_argument("--url", required=True)
    here.add_argument("--runs", type=int, default=3)
    here.add_argument("--customer", default="4242")
    args = parser.parse_args()
    if args.command == "generate":
        generate(args.out, args.events, args.files)
    elif args.command == "live":
        live(args.url, args.runs, args.customer)
    else:
        query(args.dir, args.runs, args.customer)


if __name__ == "__main__":
    main()
