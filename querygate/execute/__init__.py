"""Execute: pools and read-only transactions against the production database."""

from querygate.execute._pool import Lease, audit_pool, busy, query_pool
from querygate.execute._run import Result, describe, run, stream, upstream_error

__all__ = [
    "Lease",
    "Result",
    "audit_pool",
    "busy",
    "describe",
    "query_pool",
    "run",
    "stream",
    "upstream_error",
]
