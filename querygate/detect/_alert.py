"""An alert: what the detector says about one person's pattern of access, and why."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("low", "medium", "high")


def severity_rank(severity: str) -> int:
    """low < medium < high; anything else ranks below low."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


@dataclass(frozen=True)
class Alert:
    """One alert. ``raised_at`` is the ``occurred_at`` of the event that raised it.

    ``features`` are the measured values, ``baseline`` what they were compared
    with, ``events`` the references (seq or event id) of the events behind it.
    ``key`` makes raising idempotent: the same alert replayed twice is one alert.
    """

    actor_id: str
    rule: str
    severity: str
    raised_at: str
    summary: str
    key: str
    features: Mapping[str, Any] = field(default_factory=dict)
    baseline: Mapping[str, Any] = field(default_factory=dict)
    events: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The JSONL form ``detect backtest`` prints and the API returns."""
        return {
            "actor_id": self.actor_id,
            "rule": self.rule,
            "severity": self.severity,
            "raised_at": self.raised_at,
            "summary": self.summary,
            "features": dict(self.features),
            "baseline": dict(self.baseline),
            "events": list(self.events),
            "subjects": list(self.subjects),
            "key": self.key,
        }
