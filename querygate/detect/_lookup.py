"""The ``lookup.*`` rules: a look-up judged by the work around it, not by its reason.

Honest work leaves traces: the customer is opened through the ticket or case, a
colleague looks them up too, the person comes back to them on a later day. An
*isolated* look-up has none of these (``isolated_lookups``); one subject that
nobody else looks up, looked up again and again, is a return (``returning``).
Both compare a person with their own *workflow* (``workflow_of``): the functions
their look-ups usually go through, learnt from their own days.
"""

from __future__ import annotations

import math

from querygate.detect._alert import Alert
from querygate.detect._config import DetectConfig
from querygate.detect._event import Event
from querygate.detect._rules import date_of, fire, may, poisson_tail
from querygate.detect._state import Actor, Return, Today, Workflow, isolated, mean_sd


def workflow_of(actor: Actor, cfg: DetectConfig) -> Workflow:
    """How a person looks subjects up, from their closed days before the baseline lag.

    Until ``workflow_min`` subjects are known, there is no workflow, a look-up
    through one function counts as shallow, and returns are not judged.
    """
    hist = list(actor.history)
    days = hist[:-cfg.baseline_lag] if cfg.baseline_lag else hist
    looked = single = returning = 0
    with_function: dict[str, int] = {}
    for stat in days:
        shape = stat.shape
        if shape is None:
            continue
        looked += shape.looked
        single += shape.single
        returning += shape.returning
        for name, count in shape.with_function.items():
            with_function[name] = with_function.get(name, 0) + count
    if looked < cfg.workflow_min:
        return Workflow(len(days), frozenset(), True, False, looked, 0.0, 0.0)
    usual = frozenset(f for f, n in with_function.items() if n >= cfg.workflow_share * looked)
    return Workflow(len(days), usual, single / looked < cfg.single_share,
                    returning / looked <= cfg.returning_share, looked,
                    round(single / looked, 3), round(returning / looked, 4))


def _isolated_threshold(actor: Actor, kind: str, day: int,
                        cfg: DetectConfig) -> tuple[float, float | None, dict[str, object]]:
    """The bar for isolated look-ups of one kind over ``unexplained_window`` days, from the
    person's own days before the baseline lag: the largest of the floor, mean + z sd, a
    Poisson tail and their worst recent window. Also their share of all their look-ups."""
    hist = list(actor.history)
    older = hist[:-cfg.baseline_lag] if cfg.baseline_lag else hist
    window = cfg.unexplained_window
    values = [isolated(s, kind) for s in older]
    sums = [sum(values[i:i + window]) for i in range(max(1, len(values) - window + 1))]
    mean, sd = mean_sd(sums)
    worst = actor.peak(f"iso:{kind}", day, cfg.peak_decay)
    threshold = max(float(cfg.isolated_floor), poisson_tail(mean, cfg.isolated_tail), worst + 1,
                    mean + cfg.unexplained_z * max(sd, mean ** 0.5, 1.0))
    looked = sum(s.shape.looked for s in older if s.shape)
    # Half a look-up of prior keeps the share off 0 and 1. With fewer than workflow_min
    # look-ups there is no share to speak of: the count alone decides (share None).
    share = (sum(values) + 0.5) / (looked + 1) if looked >= cfg.workflow_min else None
    return threshold, share, {"own_mean": round(mean, 2), "own_sd": round(sd, 2),
                              "own_worst": round(worst, 1), "own_days": len(older),
                              "own_share": None if share is None else round(share, 4),
                              "own_lookups": looked, "floor": cfg.isolated_floor,
                              "tail": cfg.isolated_tail}


def share_z(count: int, total: int, share: float) -> float:
    """How many standard deviations ``count`` of ``total`` lies above ``share`` of it."""
    spread = math.sqrt(max(total, 1) * share * (1 - share))
    return (count - total * share) / spread


def _before(share: object) -> str:
    return " (too few before to compare)" if share is None else f" against {share:.0%} before"


def _kind_words(kind: str, workflow: Workflow) -> str:
    if kind == "off_workflow":
        return f"without any of {', '.join(sorted(workflow.functions))}, which are on most of " \
            "their look-ups"
    return f"through {kind.partition(':')[2]} alone, where most of their look-ups use more " \
        "than one function"


def _judged(workflow: Workflow | None, cfg: DetectConfig) -> bool:
    """Whether a person's look-ups are judged by their shape: their baseline (before the lag)
    holds ``workflow_min`` look-ups, or is full and they seldom look anyone up. A newcomer
    ramping up is not compared with their own first, lighter days."""
    if workflow is None or workflow.days < cfg.min_history_days:
        return False
    return workflow.looked >= cfg.workflow_min or \
        workflow.days >= cfg.history_days - cfg.baseline_lag


def isolated_lookups(actor: Actor, today: Today, kinds: dict[str, list[str]],
                     workflow: Workflow | None, event: Event, cfg: DetectConfig) -> list[Alert]:
    """Many look-ups that no work around them supports (for streams without reasons).

    An *isolated* look-up is of one subject, alone in its call, that nobody else
    read within ``isolated_days`` and this person had not read before in that
    time, nor saw in a list they read that day; and it was shallow for them: it
    missed the functions on most of their look-ups (their workflow: a ticket, a
    case), or it went through one function where most of theirs go through more.
    Counted by kind over ``unexplained_window`` working days, against the
    person's own days. Checked when the day closes.
    """
    if workflow is None or not _judged(workflow, cfg) or not kinds or \
            not may(actor, "lookup.isolated", today.day, cfg):
        return []
    window = cfg.unexplained_window
    previous = list(actor.history)[-(window - 1):] if window > 1 else []
    looked = len(today.targeted) + sum(s.shape.looked for s in previous if s.shape)
    found: tuple[float, str, int, float, float, dict[str, object]] | None = None
    for kind, subjects in kinds.items():
        total = len(subjects) + sum(isolated(s, kind) for s in previous)
        if total < cfg.isolated_floor:
            continue
        threshold, share, basis = _isolated_threshold(actor, kind, today.day, cfg)
        z = float("inf") if share is None else share_z(total, looked, share)
        if total >= threshold and z >= cfg.isolated_share_z and \
                (found is None or total / threshold > found[0]):
            found = (total / threshold, kind, total, threshold, z, basis)
    if found is None:
        return []
    _, kind, total, threshold, z, basis = found
    subjects = kinds[kind]
    return [fire(actor, "lookup.isolated", "medium", event, today.day,
                  f"{total} subjects over {window} working days looked up one at a time "
                  f"{_kind_words(kind, workflow)}, that nobody else read within "
                  f"{cfg.isolated_days} days (threshold {threshold:.1f}), {total / looked:.0%} of "
                  f"their look-ups{_before(basis['own_share'])}; {len(subjects)} today",
                  features={"kind": kind, "isolated": total, "today": len(subjects),
                            "looked_up": looked, "share_z": None if z == float("inf")
                            else round(z, 2),
                            "looked_up_today": len(today.targeted),
                            "days": [date_of(s.day) for s in previous] + [date_of(today.day)]},
                  baseline={"threshold": round(threshold, 2), **basis,
                            "share_z_min": cfg.isolated_share_z,
                            "workflow": sorted(workflow.functions),
                            "workflow_lookups": workflow.looked,
                            "one_function_share": workflow.single},
                  refs=[today.look_refs[s] for s in subjects if s in today.look_refs],
                  subjects=subjects)]


def returning(actor: Actor, today: Today, candidates: list[tuple[str, bool]],
              workflow: Workflow | None, event: Event, cfg: DetectConfig) -> list[Alert]:
    """One subject, that nobody else looks up, looked up again and again (for streams without
    reasons): a celebrity, a colleague, an ex.

    Counted are days on which the subject was looked up alone in its call, and
    nobody else looked it up within ``isolated_days``. It fires at
    ``repeat_days`` such days within ``repeat_window`` that missed the person's
    workflow, or at one day more where the person's subjects seldom come back
    (``returning_share``); ``repeat_lookups`` look-ups in all. Checked when the
    day closes; the second way also at each look-up (``returning_now``).
    """
    if workflow is None:
        return []
    judged = _judged(workflow, cfg)
    start = today.day - cfg.repeat_window
    alerts: list[Alert] = []
    for subject, off in candidates:
        if not off and not workflow.rare_returns:
            continue
        days = actor.returns.setdefault(subject, [])
        days[:] = [r for r in days if r.day > start and r.day != today.day]
        days.append(Return(today.day, today.looks.get(subject, 1), off,
                           today.look_refs.get(subject)))
        if alerts or not judged or not may(actor, "lookup.returning", today.day, cfg):
            continue
        off_days = [r for r in days if r.off_workflow]
        if len(off_days) >= cfg.repeat_days and \
                sum(r.lookups for r in off_days) >= cfg.repeat_lookups:
            alerts.append(_return_alert(actor, today, subject, off_days, workflow, event, cfg))
        elif workflow.rare_returns and len(days) >= cfg.repeat_days + 1 and \
                sum(r.lookups for r in days) >= cfg.repeat_lookups:
            alerts.append(_return_alert(actor, today, subject, days, workflow, event, cfg))
    return alerts


def returning_now(actor: Actor, today: Today, subject: str, workflow: Workflow, event: Event,
                  cfg: DetectConfig) -> list[Alert]:
    """At a look-up of ``subject`` alone, by someone whose subjects seldom come back and that
    nobody else looked up lately: the days before it and today reach the bar."""
    if not _judged(workflow, cfg) or not workflow.rare_returns:
        return []
    start = today.day - cfg.repeat_window
    days = [r for r in actor.returns.get(subject, ()) if start < r.day < today.day]
    days.append(Return(today.day, today.looks.get(subject, 1), False, event.ref))
    if len(days) < cfg.repeat_days + 1 or sum(r.lookups for r in days) < cfg.repeat_lookups \
            or not may(actor, "lookup.returning", today.day, cfg):
        return []
    return [_return_alert(actor, today, subject, days, workflow, event, cfg)]


def _return_alert(actor: Actor, today: Today, subject: str, days: list[Return],
                  workflow: Workflow, event: Event, cfg: DetectConfig) -> Alert:
    off = all(r.off_workflow for r in days)
    why = ("each time without " + ", ".join(sorted(workflow.functions)) +
           ", which are on most of their look-ups") if off else \
        f"where only {workflow.returning:.1%} of the subjects they look up come back on another day"
    lookups = sum(r.lookups for r in days)
    return fire(actor, "lookup.returning", "medium", event, today.day,
                 f"{subject} looked up {lookups} times on {len(days)} days within "
                 f"{cfg.repeat_window}, {why}; nobody else looked it up",
                 features={"subject": subject, "lookups": lookups,
                           "days": [date_of(r.day) for r in days],
                           "off_workflow": [r.off_workflow for r in days]},
                 baseline={"threshold_days": cfg.repeat_days + (not off),
                           "threshold_lookups": cfg.repeat_lookups,
                           "workflow": sorted(workflow.functions),
                           "returning_share": workflow.returning,
                           "returning_share_max": cfg.returning_share,
                           "isolated_days": cfg.isolated_days},
                 refs=[r.ref for r in days if r.ref], subjects=[subject])
