"""The online detector's pace: events read from ``querygate.audit_events`` per second.

    .venv/bin/python -m bench.detect.online /tmp/sim1/events.jsonl --events 30000 \\
        [--database-url postgresql://postgres@127.0.0.1/postgres]

Appends the first N simulated events to a fresh database's audit log (the real
hash-chained append), then times ``DetectorService.step`` reading them back in
batches, raising and storing alerts, as ``querygate serve`` does. Without
--database-url it starts the embedded PostgreSQL in a temporary folder.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import sql

from bench.harness.cli import arguments
from querygate import audit, execute
from querygate.detect import DetectorService
from querygate.project import load_project
from querygate.provision import DEFAULT_GATEWAY_ROLE, setup_database, url_for
from querygate.settings import Settings


def _event(line: dict[str, Any]) -> audit.AuditEvent:
    return audit.AuditEvent(
        occurred_at=dt.datetime.fromisoformat(line["occurred_at"]),
        function_name=line["function_name"], decision=line["decision"],
        actor_id=line["actor_id"], actor_roles=tuple(line.get("actor_roles") or ()),
        reason=line.get("reason"), client_addr=line.get("client_addr"),
        subjects=tuple((s["type"], s["id"]) for s in line["subjects"]),
        context=line.get("context") or {})


async def _load(url: str, events: Path, count: int) -> None:
    pool = execute.audit_pool(url, Settings())
    await pool.open(wait=True)
    started = time.monotonic()
    with events.open("rb") as source:
        for n, line in enumerate(source):
            if n >= count:
                break
            await audit.append(pool, _event(orjson.loads(line)), timeout_s=10)
    await pool.close()
    print(f"appended {count} events in {time.monotonic() - started:.1f} s")


async def _follow(project_dir: Path, url: str) -> None:
    service = DetectorService(load_project(project_dir))
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        service.cursor = 0  # read the whole log (no warm-up replay)
        started, cpu, read = time.monotonic(), time.process_time(), 0
        while n := await service.step(conn):
            read += n
        wall, used = time.monotonic() - started, time.process_time() - cpu
    print(f"online detector: {read} events in {wall:.1f} s = {read / wall:,.0f} events/s "
          f"({used:.1f} s CPU in this process); {service.raised} alerts stored")


def main() -> None:
    parser = arguments(__doc__, __spec__)
    parser.add_argument("events", type=Path)
    parser.add_argument("--events", dest="count", type=int, default=30_000)
    parser.add_argument("--database-url", help="A superuser URL (default: embedded server).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        server = args.database_url
        if server is None:
            from querygate.demo import start_embedded

            server = start_embedded(Path(folder) / "pg")
        name = f"qg_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        admin = url_for(server, dbname=name)
        setup_database(admin, parts=("identity", "audit", "detect"), read_schemas=())
        url = url_for(admin, user=DEFAULT_GATEWAY_ROLE)
        project = Path(folder) / "project"
        (project / "queries").mkdir(parents=True)
        (project / "querygate.yaml").write_text(
            f"database:\n  url: '{url}'\nsecret_key: 0123456789abcdef0123456789abcdef\n")
        try:
            asyncio.run(_load(url, args.events, args.count))
            asyncio.run(_follow(project, url))
        finally:
            with psycopg.connect(server, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(
                    sql.Identifier(name)))
            if args.database_url is None:
                from querygate.demo import stop_embedded

                stop_embedded(Path(folder) / "pg")


if __name__ == "__main__":
    main()
