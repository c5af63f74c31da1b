"""``audit reconcile --live``: sessions open now that hold a classified table and were not
opened by the gateway (another role, or the gateway's role from another program)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg

from querygate.detect import Alert

GATEWAY_APPS = ("querygate",)  # the gateway's pools name themselves querygate, querygate-audit…

_SESSIONS = """
SELECT a.pid, a.usename, coalesce(a.application_name, ''), host(a.client_addr), a.backend_start,
       coalesce(a.xact_start, a.query_start, a.backend_start), a.state,
       array_agg(DISTINCT n.nspname || '.' || c.relname ORDER BY n.nspname || '.' || c.relname)
FROM pg_catalog.pg_stat_activity a
JOIN pg_catalog.pg_locks l ON l.pid = a.pid AND l.locktype = 'relation' AND l.granted
     AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
JOIN pg_catalog.pg_class c ON c.oid = l.relation
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE a.pid <> pg_backend_pid() AND n.nspname || '.' || c.relname = ANY(%s)
GROUP BY a.pid, a.usename, a.application_name, a.client_addr, a.backend_start, a.xact_start,
         a.query_start, a.state
ORDER BY a.backend_start
"""


@dataclass(frozen=True)
class LiveSession:
    rule: str
    pid: int
    role: str
    application: str
    client: str | None
    since: dt.datetime
    holding_since: dt.datetime
    state: str
    tables: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "severity": "high", "pid": self.pid, "role": self.role,
                "application": self.application, "client": self.client,
                "connected_at": self.since.isoformat(), "since": self.holding_since.isoformat(),
                "state": self.state, "tables": list(self.tables)}

    def alert(self) -> Alert:
        raised = self.holding_since.astimezone(dt.UTC)
        at = raised.strftime("%Y-%m-%dT%H:%M:%S.") + f"{raised.microsecond // 1000:03d}Z"
        how = "another role" if self.rule == "bypass.role" else \
            f"the gateway's role from {self.application or 'an unnamed program'}"
        return Alert(actor_id=f"pg:{self.role}", rule=self.rule, severity="high", raised_at=at,
                     summary=f"session {self.pid} of {how} holds {', '.join(self.tables)}",
                     key=f"{self.rule}:live:{self.pid}:{self.since.isoformat()}",
                     features={"role": self.role, "pid": self.pid, "tables": list(self.tables),
                               "application": self.application, "client": self.client})


def live_bypasses(conn: psycopg.Connection[Any], classified: Iterable[str], *,
                  gateway_role: str) -> list[LiveSession]:
    """Sessions holding a lock on a classified table, other than the gateway's own."""
    found: list[LiveSession] = []
    for pid, role, app, client, since, holding, state, tables in conn.execute(
            _SESSIONS, (sorted(classified),)):
        if role != gateway_role:
            rule = "bypass.role"
        elif not app.startswith(GATEWAY_APPS):
            rule = "bypass.unaudited"
        else:
            continue
        found.append(LiveSession(rule, pid, role, app, client, since, holding, state or "",
                                 tuple(tables)))
    return found
