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
from dataclasses import dataclass, field, replace
from typing import Any

from querygate.detect._alert import SEVERITIES
from querygate.detect._config import RULES, DetectConfig, load_config
from querygate.detect._watch import WatchSettings, load_watch
from querygate.errors import ProjectError
from querygate.project import Problems, did_you_mean, gathering, line_of, resolve_secret, unknown_key


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


ALERT_KEYS = ("reviewers", "webhook", "suspend_on", "suspend_except")
WEBHOOK_KEYS = ("url", "min_severity", "max_attempts", "timeout_s", "backoff_s")


def _positive(value: object, what: str, where: str, line: int | None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ProjectError(f"{what} must be a positive number, not {value!r}", path=where,
                           line=line)
    return float(value)


def _severity(value: object, what: str, where: str, line: int | None) -> str:
    if value not in SEVERITIES:
        raise ProjectError(f"{what} must be one of {', '.join(SEVERITIES)}, not {value!r}"
                           f"{did_you_mean(value, SEVERITIES)}", path=where, line=line)
    return str(value)


def _webhook(hook: object, where: str, line: int | None, problems: Problems) -> Webhook | None:
    if not isinstance(hook, Mapping) or "url" not in hook:
        raise ProjectError("alerts.webhook needs url: (a Slack-compatible incoming webhook; use "
                           "$env:NAME for a secret URL)", path=where, line=line)
    for key in hook:
        with gathering(problems):
            if key not in WEBHOOK_KEYS:
                raise ProjectError(unknown_key("alerts.webhook", key, WEBHOOK_KEYS), path=where,
                                   line=line_of(hook, key))
    url = resolve_secret(hook["url"], what="alerts.webhook.url", path=where,
                         line=line_of(hook, "url"))
    return Webhook(
        str(url), _severity(hook.get("min_severity", "medium"), "alerts.webhook.min_severity",
                            where, line_of(hook, "min_severity")),
        int(_positive(hook.get("max_attempts", 6), "alerts.webhook.max_attempts", where,
                      line_of(hook, "max_attempts"))),
        _positive(hook.get("timeout_s", 5.0), "alerts.webhook.timeout_s", where,
                  line_of(hook, "timeout_s")),
        _positive(hook.get("backoff_s", 30.0), "alerts.webhook.backoff_s", where,
                  line_of(hook, "backoff_s")))


def _suspend_except(raw: Mapping[str, Any], where: str) -> frozenset[str]:
    excepted = raw.get("suspend_except", ["break_glass"])
    line = line_of(raw, "suspend_except")
    if not isinstance(excepted, list):
        raise ProjectError(f"alerts.suspend_except must list rules among {', '.join(RULES)}",
                           path=where, line=line)
    for rule in excepted:
        if rule not in RULES:
            raise ProjectError(f"alerts.suspend_except: {rule!r} is not a rule"
                               f"{did_you_mean(rule, RULES)} (rules: {', '.join(RULES)})",
                               path=where, line=line)
    return frozenset(excepted)


def load_alerts(raw: Mapping[str, Any], where: str, problems: Problems = None) -> AlertSettings:
    """The ``alerts:`` section (``problems``: see ``load_settings``)."""
    for key in raw:
        with gathering(problems):
            if key not in ALERT_KEYS:
                raise ProjectError(unknown_key("alerts", key, ALERT_KEYS), path=where,
                                   line=line_of(raw, key))
    settings = AlertSettings()
    with gathering(problems):
        reviewers = raw.get("reviewers") or []
        if not isinstance(reviewers, list) or not all(isinstance(r, str) for r in reviewers):
            raise ProjectError("alerts.reviewers must list role names", path=where,
                               line=line_of(raw, "reviewers"))
        settings = replace(settings, reviewers=frozenset(reviewers))
    with gathering(problems):
        if raw.get("webhook") is not None:
            settings = replace(settings, webhook=_webhook(raw["webhook"], where,
                                                          line_of(raw, "webhook"), problems))
    with gathering(problems):
        suspend = raw.get("suspend_on")
        if suspend is not None:
            settings = replace(settings, suspend_on=_severity(
                suspend, "alerts.suspend_on", where, line_of(raw, "suspend_on")))
    with gathering(problems):
        settings = replace(settings, suspend_except=_suspend_except(raw, where))
    return settings


def load_service(raw: Mapping[str, Any], where: str, problems: Problems = None) -> ServiceSettings:
    """The online service's settings under ``detect:`` (``problems``: see ``load_settings``)."""
    settings = ServiceSettings()
    with gathering(problems):
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ProjectError(f"detect.enabled must be true or false, not {enabled!r}",
                               path=where, line=line_of(raw, "enabled"))
        settings = replace(settings, enabled=enabled)
    with gathering(problems):
        days = _positive(raw.get("warmup_replay_days", 45), "detect.warmup_replay_days", where,
                         line_of(raw, "warmup_replay_days"))
        settings = replace(settings, warmup_replay_days=int(days))
    with gathering(problems):
        settings = replace(settings, poll_interval_s=_positive(
            raw.get("poll_interval_s", 2.0), "detect.poll_interval_s", where,
            line_of(raw, "poll_interval_s")))
    return settings


@dataclass(frozen=True)
class Settings:
    """Everything the detector and its alerts read from a project."""

    rules: DetectConfig
    alerts: AlertSettings
    service: ServiceSettings
    watch: WatchSettings = field(default_factory=WatchSettings)  # watched subjects, relationships


def load_settings(project: Any, problems: Problems = None) -> Settings:
    """``detect:`` and ``alerts:``, validated.

    Given a list, ``problems`` gathers every error (``check``); without, the first one raises.
    """
    where = str(project.root / "querygate.yaml")
    detect = project.section("detect")
    return Settings(load_config(detect, path=where, problems=problems),
                    load_alerts(project.section("alerts"), where, problems),
                    load_service(detect, where, problems),
                    load_watch(detect, project.root, where, problems))
