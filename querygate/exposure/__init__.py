"""Exposure and reconciliation: proof that the gateway is the only door.

``find_exposures`` reads PostgreSQL's catalogs for every other role that can read a
classified column, and how; ``reconcile`` reads PostgreSQL's own log (pgAudit records) for
statements that went around the gateway; ``live_bypasses`` looks at the sessions open now.
"""

from querygate.exposure._allow import Accepted, parse_allow
from querygate.exposure._live import LiveSession, live_bypasses
from querygate.exposure._paths import Exposure
from querygate.exposure._reconcile import (
    ADHOC,
    Finding,
    Functions,
    GatewayEvent,
    Reconciliation,
    reconcile,
)
from querygate.exposure._report import ExposureReport, describe_seen, find_exposures, login_seen

__all__ = [
    "ADHOC",
    "Accepted",
    "Exposure",
    "ExposureReport",
    "Finding",
    "Functions",
    "GatewayEvent",
    "LiveSession",
    "Reconciliation",
    "describe_seen",
    "find_exposures",
    "live_bypasses",
    "login_seen",
    "parse_allow",
    "reconcile",
]
