"""Detect: insider patterns in the audit stream, online and over exported events.

The same ``Detector`` runs in both places: ``DetectorService`` tails the audit log
(``querygate serve`` or ``querygate detect run``) and keeps alerts in PostgreSQL;
``backtest`` reads exported JSONL (``querygate detect backtest``).
"""

from querygate.detect._alert import SEVERITIES, Alert, severity_rank
from querygate.detect._backtest import backtest, read_events
from querygate.detect._config import RULES, DetectConfig, load_config
from querygate.detect._detector import Detector
from querygate.detect._event import Event, EventError, event_from_json, event_from_stored
from querygate.detect._glass import WatchGuard, watch_guards
from querygate.detect._pgaudit import PgauditImport, import_pgaudit
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

__all__ = [
    "RULES",
    "SEVERITIES",
    "Alert",
    "AlertSettings",
    "DetectConfig",
    "Detector",
    "DetectorService",
    "Event",
    "EventError",
    "Lists",
    "PgauditImport",
    "Settings",
    "StoredAlert",
    "WatchGuard",
    "WatchSettings",
    "Webhook",
    "WebhookSender",
    "acknowledge",
    "add_action",
    "backtest",
    "event_from_json",
    "event_from_stored",
    "get_alert",
    "import_pgaudit",
    "list_alerts",
    "lists_from_files",
    "load_config",
    "load_settings",
    "read_events",
    "save_alert",
    "severity_rank",
    "slack_payload",
    "watch_guards",
]
