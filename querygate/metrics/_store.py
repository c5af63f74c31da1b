"""Figures the whole deployment shares, read from the audit store when scraped.

The audit chain's head, the detector's cursor (its lag behind the head) and the alerts it
raised live in PostgreSQL, not in any one process: every replica reports the same values.
A scrape that cannot read them in time leaves them out, and says so in
``querygate_store_scrape_ok``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from psycopg_pool import AsyncConnectionPool, PoolTimeout

_HEAD = "SELECT seq FROM querygate.audit_head WHERE id = 1"
_CURSOR = "SELECT seq FROM querygate.detect_cursor WHERE id = 1"
_ALERTS = "SELECT rule, severity, count(*) FROM querygate.alerts GROUP BY rule, severity"


class StoreCollector(Collector):
    """The last values read by ``refresh``; nothing is read at collect time."""

    def __init__(self) -> None:
        self.ok = 0.0
        self.head: int | None = None
        self.cursor: int | None = None
        self.alerts: dict[tuple[str, str], int] = {}

    async def refresh(self, pool: AsyncConnectionPool[Any], timeout_s: float) -> bool:
        """Read the shared figures through ``pool``; False (and nothing kept) on failure."""
        try:
            async with pool.connection(timeout=timeout_s) as conn:
                row = await (await conn.execute(_HEAD)).fetchone()
                head = int(row[0]) if row else None
                row = await (await conn.execute(_CURSOR)).fetchone()
                cursor = int(row[0]) if row else None
                rows = await (await conn.execute(_ALERTS)).fetchall()
        except (PoolTimeout, psycopg.Error, OSError):
            self.ok, self.head, self.cursor, self.alerts = 0.0, None, None, {}
            return False
        self.ok, self.head, self.cursor = 1.0, head, cursor
        self.alerts = {(str(rule), str(severity)): int(n) for rule, severity, n in rows}
        return True

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("querygate_store_scrape_ok", "1 when this scrape read the "
                                "shared figures from the audit store, else 0.", value=self.ok)
        if self.head is not None:
            yield GaugeMetricFamily("querygate_audit_head_seq", "Sequence number of the audit "
                                    "chain's last event (the whole deployment's).",
                                    value=self.head)
        if self.head is not None and self.cursor is not None:
            yield GaugeMetricFamily("querygate_detector_cursor_seq", "The last event the "
                                    "insider detector has read.", value=self.cursor)
            yield GaugeMetricFamily("querygate_detector_lag_events", "Audit events written but "
                                    "not yet read by the detector.",
                                    value=max(self.head - self.cursor, 0))
        alerts = CounterMetricFamily("querygate_alerts_raised", "Alerts the detector has raised "
                                     "and stored, by rule and severity (the whole deployment's).",
                                     labels=["rule", "severity"])
        for (rule, severity), count in sorted(self.alerts.items()):
            alerts.add_metric([rule, severity], count)
        yield alerts


STORE = StoreCollector()
REGISTRY.register(STORE)
