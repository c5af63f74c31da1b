"""Operating the gateway: Prometheus metrics and readiness.

Each process keeps its own metrics (``prometheus_client``'s registry) and serves them at
``GET /metrics``; figures kept in PostgreSQL (the audit head, the detector's lag, alerts) are
read at scrape time and are the same in every replica. ``GET /readyz`` checks the database,
the audit store and the signing key for real.
"""

from querygate.metrics._ready import NOT_CONFIGURED, Readiness, check
from querygate.metrics._registry import (
    AUDIT_WAIT_SECONDS,
    FRONT_DOORS,
    UNKNOWN,
    observe_batch,
    observe_call,
    observe_pool_wait,
    observed,
    outcome,
    track_pool,
)
from querygate.metrics._store import STORE

__all__ = [
    "AUDIT_WAIT_SECONDS",
    "FRONT_DOORS",
    "NOT_CONFIGURED",
    "STORE",
    "UNKNOWN",
    "Readiness",
    "check",
    "observe_batch",
    "observe_call",
    "observe_pool_wait",
    "observed",
    "outcome",
    "track_pool",
]
