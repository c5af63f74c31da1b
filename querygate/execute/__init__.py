"""Execute: pools and read-only transactions against the production database."""

from querygate.execute._pool import audit_pool, query_pool
from querygate.execute._run import Result, describe, run, stream, upstream_error

__all__ = ["Result", "audit_pool", "describe", "query_pool", "run", "stream", "upstream_error"]
