"""The detector's settings: one table of names, defaults and help, read from ``detect:``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from querygate.errors import ProjectError
from querygate.project import Problems, did_you_mean, gathering, line_of

RULES = (
    "break_glass", "volume.spike", "purpose.miss", "purpose.unexplained", "purpose.deep_look",
    "purpose.repeat",
    "access.unusual", "access.denied", "breadth.sustained", "breadth.novel", "lookup.isolated",
    "lookup.returning", "snoop.returning", "watch.subject", "watch.related",
)
"""Every rule the detector knows; ``disabled_rules`` may name any of them."""


@dataclass(frozen=True)
class DetectConfig:
    """Thresholds of every rule. The defaults are the ones measured in docs/detection.md."""

    warmup_days: int = 7  # days of history before any threshold may fire
    min_history_days: int = 10  # active days before a person's own baseline is trusted
    history_days: int = 40  # active days a personal baseline covers
    peer_days: int = 45  # days a peer-group baseline covers
    novelty_days: int = 90  # a subject untouched this long is new again
    forget_days: int = 120  # a person silent this long is forgotten (turnover)
    targeted_max: int = 3  # an event with at most this many subjects is a targeted look-up
    cooldown_days: int = 7  # the same rule does not fire twice for one person within this
    spike_floor: int = 60  # distinct subjects a day never alerted below
    spike_personal: float = 3.0  # x the person's 95th percentile day
    spike_max: float = 1.5  # x the person's busiest day (fading, see peak_decay)
    peak_decay: float = 0.98  # a busiest day fades by this a day: half-life about five weeks
    spike_peer: float = 2.0  # x the typical peer's busiest day
    mixed_peer_quantile: float = 0.9  # without roles, a newcomer's per-function peer day
    explained_days: int = 28  # a look-up without reason is explained by a reasoned one this recent
    reason_coverage: float = 0.5  # reasons are expected when peers give them this often
    mismatch_share: float = 0.05  # a reason reused for others is a sign only where this is rare
    reason_days: int = 60  # a reason unused this long is forgotten
    unexplained_floor: int = 8  # unexplained subjects (over the window) never alerted below
    unexplained_window: int = 3  # active days summed
    unexplained_z: float = 4.0  # standard deviations above one's own mean ...
    unexplained_tail: float = 1e-5  # ... and at least this far into a Poisson tail
    unexplained_peer: float = 1.5  # x a busy peer's worst window (for people without history)
    baseline_lag: int = 5  # active days before a day joins the unexplained baseline
    deep_events: int = 4  # unexplained look-ups of one subject in a day
    repeat_days: int = 2  # days one subject was looked at without purpose, within repeat_window
    repeat_lookups: int = 5  # ... and look-ups of it in all
    repeat_window: int = 7
    repeat_chance: float = 5e-4  # above this chance of a subject coming back by itself, the
    # one-subject thresholds rise (unexplained a day squared x window / subjects peers touch)
    offhours_share: float = 0.02  # an hour the person worked on fewer than this share of days
    offhours_min_days: int = 15
    offhours_subjects: int = 15  # subjects looked up at such hours, from anywhere, to alert
    new_address_subjects: int = 8  # ... when the address is new to everyone
    denied_floor: int = 8  # refused calls a day never alerted below
    cusum_k: float = 0.5  # allowance per day, in standard deviations
    cusum_h: float = 10.0  # alarm level
    cusum_alpha: float = 0.05  # weight of a new day in the personal baseline
    cusum_warm_days: int = 20  # active days learnt before the CUSUM may alarm
    unexplained_intraday: float = 2.0  # x the threshold, to alert before the day closes
    # Look-ups judged by their shape (the lookup.* rules), with or without reasons:
    isolated_days: int = 7  # nobody else read the subject, nor this person, in this many days
    isolated_floor: int = 8  # isolated look-ups (over unexplained_window) never alerted below
    isolated_tail: float = 1e-4  # ... and at least this far into a Poisson tail of one's own mean
    isolated_share_z: float = 3.0  # ... and their share of one's look-ups this many sd above usual
    workflow_share: float = 0.8  # a function on this share of one's look-ups is their workflow
    workflow_min: int = 50  # subjects looked up (in the baseline) before a workflow is known
    single_share: float = 0.5  # one function alone is shallow only where rarer than this
    returning_share: float = 0.02  # where fewer of one's subjects come back, a return is a sign
    # Returning attention (snoop.returning): subjects looked up again with no work behind them
    snoop_window: int = 28  # days over which returns add up
    snoop_floor: float = 1.0  # returns (weighted: 1 with a cause from purpose, 0.5 from shape,
    # 1/n for a day found by a search among n) never alerted below
    snoop_tail: float = 1e-3  # ... and at least this far into a Poisson tail of one's own rate
    snoop_sitting_min: float = 0.0  # where set, a subject looked up alone again this many
    # minutes after its last look the same day is a second sitting, one more return (0: off;
    # honest callbacks make such days too, see docs/detection.md)
    disabled_rules: frozenset[str] = field(default_factory=frozenset)

    def enabled(self, rule: str) -> bool:
        return rule not in self.disabled_rules


SERVICE = ("enabled", "warmup_replay_days", "poll_interval_s", "watch", "relationships")
"""Settings under ``detect:`` read elsewhere: the online service's (``_settings.load_service``)
and the lists (``_watch.load_watch``)."""


def load_config(raw: Mapping[str, Any] | None, *, path: str = "querygate.yaml",
                problems: Problems = None) -> DetectConfig:
    """``detect:`` settings over the defaults; unknown names and wrong types are errors.

    Given a list, ``problems`` gathers every error (``check``); without, the first one raises.
    """
    known = sorted({f.name for f in fields(DetectConfig)} | set(SERVICE))
    values: dict[str, Any] = {}
    for name, value in (raw or {}).items():
        with gathering(problems):
            if name in SERVICE:
                continue  # read by the online service
            if name not in known:
                hint = did_you_mean(name, known) or f" (known: {', '.join(known)})"
                raise ProjectError(f"detect: unknown setting {name!r}{hint}", path=path,
                                   line=line_of(raw, name))
            values[name] = _value(name, value, path, line_of(raw, name))
    return replace(DetectConfig(), **values)


def _value(name: str, value: object, path: str, line: int | None) -> object:
    if name == "disabled_rules":
        if not isinstance(value, list):
            raise ProjectError(f"detect.disabled_rules must be a list of rules, e.g. "
                               f"[{RULES[0]}] (rules: {', '.join(RULES)})", path=path, line=line)
        for rule in value:
            if rule not in RULES:
                raise ProjectError(f"detect.disabled_rules: {rule!r} is not a rule"
                                   f"{did_you_mean(rule, RULES)} (rules: {', '.join(RULES)})",
                                   path=path, line=line)
        return frozenset(value)
    default = getattr(DetectConfig(), name)
    whole = isinstance(default, int)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 \
            or (whole and not float(value).is_integer()):
        kind = "whole number" if whole else "number"
        raise ProjectError(f"detect.{name} must be a non-negative {kind} (default {default}), "
                           f"not {value!r}", path=path, line=line)
    return type(default)(value)
