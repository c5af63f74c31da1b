"""The ``alerts:`` section and the online detector's own settings under ``detect:``.

::

    detect:
      enabled: true               # the gateway runs the detector over its audit log
      warmup_replay_days: 45      # at start, days of the log replayed (silently) for baselines
      poll_interval_s: 2
    alerts:
      reviewers: [compliance, admin]        # roles that may list and acknowledge alerts
      webhook:
        url: $env:QUERYGATE_ALERT_WEBHOOK   # Slack-compatible incoming webhook
        min_severity: medium
        max_attempts: 6                     # retries back off: 30 s, 1, 2, 4, 8 minutes
      suspend_on: high                      # suspend the person pending review (default: never)
      suspend_except: [break_glass]         # rules that never suspend
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from querygate.detect._alert import SEVERITIES
from querygate.detect._config import RULES, DetectConfig, load_config
from querygate.errors import ProjectError
from querygate.project import resolve_secret


@dataclass(frozen=True)
class Webhook:
    url: str
    min_severity: str = "medium"
    max_attempts: int = 6
    timeout_s: float = 5.0
    backoff_s: float = 30.0


@dataclass(frozen=True)
class AlertSettings:
    reviewers: frozenset[str] = frozenset()
    webhook: Webhook | None = None
    suspend_on: str | None = None
    suspend_except: frozenset[str] = frozenset({"break_glass"})


@dataclass(frozen=True)
class ServiceSettings:
    enabled: bool = True
    warmup_replay_days: int = 45
    poll_interval_s: float = 2.0


def _positive(value: object, what: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ProjectError(f"{what} must be a positive number", path=where)
    return float(value)


def _severity(value: object, what: str, where: str) -> str:
    if value not in SEVERITIES:
        raise ProjectError(f"{what} must be one of {', '.join(SEVERITIES)}", path=where)
    return str(value)


def load_alerts(raw: Mapping[str, Any], where: str) -> AlertSettings:
    unknown = set(raw) - {"reviewers", "webhook", "suspend_on", "suspend_except"}
    if unknown:
        raise ProjectError(f"alerts: unknown key {sorted(unknown)[0]!r}; known: reviewers, "
                           "webhook, suspend_on, suspend_except", path=where)
    reviewers = raw.get("reviewers") or []
    if not isinstance(reviewers, list) or not all(isinstance(r, str) for r in reviewers):
        raise ProjectError("alerts.reviewers must list role names", path=where)
    hook = raw.get("webhook")
    webhook = None
    if hook is not None:
        if not isinstance(hook, Mapping) or "url" not in hook:
            raise ProjectError("alerts.webhook needs url: (use $env:NAME for a secret URL)",
                               path=where)
        url = resolve_secret(hook["url"], what="alerts.webhook.url", path=where, line=None)
        webhook = Webhook(
            str(url), _severity(hook.get("min_severity", "medium"), "alerts.webhook.min_severity",
                                where),
            int(_positive(hook.get("max_attempts", 6), "alerts.webhook.max_attempts", where)),
            _positive(hook.get("timeout_s", 5.0), "alerts.webhook.timeout_s", where),
            _positive(hook.get("backoff_s", 30.0), "alerts.webhook.backoff_s", where))
    suspend = raw.get("suspend_on")
    excepted = raw.get("suspend_except", ["break_glass"])
    if not isinstance(excepted, list) or any(r not in RULES for r in excepted):
        raise ProjectError(f"alerts.suspend_except must list rules among {', '.join(RULES)}",
                           path=where)
    return AlertSettings(frozenset(reviewers), webhook,
                         None if suspend is None else _severity(suspend, "alerts.suspend_on", where),
                         frozenset(excepted))


def load_service(raw: Mapping[str, Any], where: str) -> ServiceSettings:
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ProjectError("detect.enabled must be true or false", path=where)
    return ServiceSettings(
        enabled, int(_positive(raw.get("warmup_replay_days", 45), "detect.warmup_replay_days",
                               where)),
        _positive(raw.get("poll_interval_s", 2.0), "detect.poll_interval_s", where))


@dataclass(frozen=True)
class Settings:
    """Everything the detector and its alerts read from a project."""

    rules: DetectConfig
    alerts: AlertSettings
    service: ServiceSettings


def load_settings(project: Any) -> Settings:
    where = str(project.root / "querygate.yaml")
    detect = project.section("detect")
    return Settings(load_config(detect, path=where), load_alerts(project.section("alerts"), where),
                    load_service(detect, where))
