"""Archive export: JSONL vs Parquet, time, size and peak memory, and verifying the files back.

Two ways to run it (one format per process, so the peak memory is that format's alone):

    # the real log of a project, through `audit.export`, in process
    .venv/bin/python -m bench.audit.archive --project DIR --format parquet --out all.parquet
    # N synthetic, correctly chained events (no database): does memory stay flat at a month?
    .venv/bin/python -m bench.audit.archive --synthetic 430000 --format parquet --out m.parquet
"""

from __future__ import annotations

import asyncio
import datetime as dt
import resource
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg

from bench.harness.cli import arguments
from querygate import audit
from querygate.audit import ParquetWriter, merged, verify_export
from querygate.project import load_project


def synthetic(count: int) -> Iterator[dict[str, Any]]:
    """``count`` chained events shaped like the demo's, as exported lines."""
    prev, start = audit.GENESIS, dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    for seq in range(1, count + 1):
        event = audit.AuditEvent(
            occurred_at=start + dt.timedelta(seconds=seq * 6.2, microseconds=seq % 997),
            function_name="get_customer_by_id", decision="allowed", actor_id=f"usr_{seq % 40}",
            actor_email=f"agent{seq % 40}@example.com", actor_roles=("support",),
            parameters={"customer_id": seq % 5000}, reason=f"TICKET-{seq % 9000}",
            rows_returned=1, fields={"iban": "mask.last4", "email": "allow", "ssn": "omit"},
            subjects=(("customer", str(seq % 5000)),), client_addr="10.0.0.5",
            duration_us=900 + seq % 30000, policy_version="pv:9d6d8236a565c514",
            event_id=uuid.UUID(int=seq))
        content = event.content_hash()
        digest = audit.link(prev, seq, content)
        stored = audit.StoredEvent((seq, event.event_id, event.occurred_at, event.actor_id,
                                    event.actor_email, list(event.actor_roles),
                                    event.function_name, event.parameters, event.decision,
                                    event.reason, None, 1, event.fields,
                                    [{"type": "customer", "id": str(seq % 5000)}],
                                    event.client_addr, event.duration_us, {},
                                    event.policy_version, content, prev, digest))
        prev = digest
        yield stored.export()


def write(lines: Iterator[dict[str, Any]], fmt: str, out: Path) -> int:
    count = 0
    if fmt == "parquet":
        with ParquetWriter(out) as writer:
            for line in lines:
                writer.add(line)
        return writer.count
    with out.open("wb") as sink:
        for line in lines:
            sink.write(orjson.dumps(line) + b"\n")
            count += 1
    return count


def main() -> None:
    parser = arguments(__doc__, __spec__)
    parser.add_argument("--project", type=Path)
    parser.add_argument("--synthetic", type=int)
    parser.add_argument("--format", choices=["jsonl", "parquet"], required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    started = time.perf_counter()
    if args.synthetic:
        count = write(synthetic(args.synthetic), args.format, args.out)
    else:
        count = asyncio.run(export_all(args.project, args.format, args.out))
    wrote = time.perf_counter() - started
    started = time.perf_counter()
    result = verify_export(merged([args.out]))
    checked = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"{args.format}: {count} events, {args.out.stat().st_size / 1e6:.2f} MB, "
          f"written in {wrote:.2f} s, verified ({result.ok}, {result.checked} events) in "
          f"{checked:.2f} s; peak RSS {peak} MB")


async def export_all(project_dir: Path, fmt: str, out: Path) -> int:
    """The whole log through ``audit.export``, streamed into the file as the CLI does."""
    url = load_project(project_dir).database_url
    count = 0
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        if fmt == "parquet":
            with ParquetWriter(out) as writer:
                async for line in audit.export(conn):
                    writer.add(line)
            return writer.count
        with out.open("wb") as sink:
            async for line in audit.export(conn):
                sink.write(orjson.dumps(line) + b"\n")
                count += 1
    return count


if __name__ == "__main__":
    main()
