"""What the benchmarks share: a PostgreSQL to run against, a project, processes, load, reports.

- ``postgres``: the embedded PostgreSQL in a temporary folder, or a server you name
  (``--database-url``); a fresh database with the demo data and querygate's schema in it.
- ``project``: a demo-like project folder written from the packaged demo, bench users, tokens.
- ``processes``: free ports, ``querygate serve`` and the bare endpoint as processes, waiting for
  them, their CPU time and memory by process.
- ``load``: wrk for HTTP, a client process for the PostgreSQL wire protocol.
- ``report``: percentiles and tables; ``cli``: a --help made of the module's docstring.
- ``bare``: the bare Starlette + psycopg endpoint querygate is compared against.
"""

from bench.harness.cli import arguments
from bench.harness.load import Figures, http_client, pg_client, wrk
from bench.harness.postgres import demo_database, fresh_database, postgres, postmaster_pid
from bench.harness.processes import (
    CpuMeter,
    PeakRss,
    Server,
    free_port,
    start_bare,
    start_serve,
    stop,
    wait_port,
    wait_ready,
)
from bench.harness.project import add_bench_user, demo_tokens, write_project
from bench.harness.report import percentile, summary, table

__all__ = [
    "CpuMeter",
    "Figures",
    "PeakRss",
    "Server",
    "add_bench_user",
    "arguments",
    "demo_database",
    "demo_tokens",
    "free_port",
    "fresh_database",
    "http_client",
    "percentile",
    "pg_client",
    "postgres",
    "postmaster_pid",
    "start_bare",
    "start_serve",
    "stop",
    "summary",
    "table",
    "wait_port",
    "wait_ready",
    "write_project",
    "wrk",
]
