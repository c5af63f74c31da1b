"""Detect: insider patterns in the audit stream, online and over exported events.

The same ``Detector`` runs in both places: ``DetectorService`` tails the audit log
(``querygate serve`` or ``querygate detect run``) and keeps alerts in PostgreSQL;
``backtest`` reads exported JSONL (``querygate detect backtest``).
"""

from querygate.detect._alert import SEVERITIES, Alert, severity_rank
from querygate.detect._backtest import backtest, read_events
from querygate.detect._config import RULES, DetectConfig, load_config
from querygate.detect._detector import Detector
from querygate.detect._event import Event, event_from_json, event_from_stored
from querygate.detect._glass import WatchGuard, watch_guards
from querygate.detect._pgaudit import (
    STDERR_PREFIX,
    AuditRecord,
    LogMessage,
    PgauditImport,
    audit_records,
    import_pgaudit,
    last_seen,
    log_format,
)
from querygate.detect._service import DetectorService
from querygate.detect._settings import AlertSettings, Settings, Webhook, load_settings
from querygate.detect._store import (
    StoredAlert,
    acknowledge,
    add_action,
    get_alert,
    list_alerts,
    save_alert,
)
from querygate.detect._watch import Lists, WatchSettings, lists_from_files
from querygate.detect._webhook import WebhookSender, slack_payload
from querygate.errors import EventError

__all__ = [
    "RULES",
    "SEVERITIES",
    "STDERR_PREFIX",
    "Alert",
    "AlertSettings",
    "AuditRecord",
    "DetectConfig",
    "Detector",
    "DetectorService",
    "Event",
    "EventError",
    "Lists",
    "LogMessage",
    "PgauditImport",
    "Settings",
    "StoredAlert",
    "WatchGuard",
    "WatchSettings",
    "Webhook",
    "WebhookSender",
    "acknowledge",
    "add_action",
    "audit_records",
    "backtest",
    "event_from_json",
    "event_from_stored",
    "get_alert",
    "import_pgaudit",
    "last_seen",
    "list_alerts",
    "lists_from_files",
    "load_config",
    "load_settings",
    "log_format",
    "read_events",
    "save_alert",
    "severity_rank",
    "slack_payload",
    "watch_guards",
]
