"""Operating the gateway: Prometheus metrics and readiness.

Each process keeps its own metrics (``prometheus_client``'s registry) and serves them at
``GET /metrics``; figures kept in PostgreSQL (the audit head, the detector's lag, alerts) are
read at scrape time and are the same in every replica. Readiness (``GET /readyz``) is the
gateway's own question: ``querygate.gateway.Gateway.readiness``.
"""

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
    "STORE",
    "UNKNOWN",
    "observe_batch",
    "observe_call",
    "observe_pool_wait",
    "observed",
    "outcome",
    "track_pool",
]
