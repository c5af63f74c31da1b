"""Watched subjects and relationships: alerted at the look-up itself.

``watch.subject``: a watched subject looked up without a purpose, or the gateway's
break-the-glass verdict in the event (a reason given, or refused). ``watch.related``:
anyone's look-up of a subject linked to them (their own record, family, a
colleague's own record) without a purpose. Both judge a look-up of one subject
alone in a call, once per person and subject per ``cooldown_days``.
"""

from __future__ import annotations

from querygate.detect._alert import Alert
from querygate.detect._config import DetectConfig
from querygate.detect._event import Event
from querygate.detect._rules import date_of
from querygate.detect._state import Actor, Today
from querygate.detect._watch import Lists


def lists_check(actor: Actor, today: Today, event: Event, lists: Lists,
                bound: tuple[frozenset[str], str] | None, specific: bool,
                cfg: DetectConfig) -> list[Alert]:
    """A look-up (of one subject alone) of a watched subject, or of one related to the person,
    without a purpose: alerted at the look-up, once per person and subject per
    ``cooldown_days``."""
    if len(event.subjects) != 1:
        return []  # a search that returned a few is not a look at each
    subject = event.subjects[0]
    kind = lists.related(actor.id, event.email, subject)
    why = lists.watched.get(subject)
    if (kind is None and why is None) or _purpose(today, event, bound, subject, specific):
        return []
    if kind is not None:
        return _listed(actor, today, event, "watch.related", subject, cfg,
                       f"{subject} is related to them ({kind}): looked up through "
                       f"{event.function} {_without(event)}", {"relationship": kind})
    return _listed(actor, today, event, "watch.subject", subject, cfg,
                   f"{subject} is watched ({why}): looked up through {event.function} "
                   f"{_without(event)}", {"watched": why})


def _purpose(today: Today, event: Event, bound: tuple[frozenset[str], str] | None,
             subject: str, specific: bool) -> bool:
    """A purpose match, or a reason that names this subject: a ticket first given for it (any
    reason, where reasons here are not specific to one subject), or a new one opened through
    the person's workflow (where they have one)."""
    if event.purpose is not None:
        return event.purpose == "match"
    if event.reason is None:
        return False
    if bound is not None:
        return subject in bound[0] or not specific
    usual = today.workflow.functions if today.workflow is not None else frozenset()
    return not usual or event.function in usual


def _without(event: Event) -> str:
    if event.purpose == "miss":
        return "and the purpose check found no purpose"
    if event.reason is None:
        return "without a reason"
    return f"with a reason ({event.reason[:40]}) that names no ticket for them"


def _listed(actor: Actor, today: Today, event: Event, rule: str, subject: str,
            cfg: DetectConfig, summary: str, extra: dict[str, object],
            outcome: str | None = None) -> list[Alert]:
    key = f"{rule}:{subject}" if outcome is None else f"{rule}:{subject}:{outcome}"
    last = actor.cooldown.get(key)
    if not cfg.enabled(rule) or (last is not None and today.day - last < cfg.cooldown_days):
        return []
    actor.cooldown[key] = today.day
    severity = "high" if event.reason is None or event.purpose == "miss" or \
        outcome == "refused" else "medium"
    return [Alert(actor.id, rule, severity, event.occurred_at, summary,
                  f"{rule}:{actor.id}:{key.removeprefix(rule + ':')}:{date_of(today.day)}",
                  {"subject": subject, "function": event.function, "reason": event.reason,
                   "purpose": event.purpose, **extra}, {}, tuple(r for r in (event.ref,) if r),
                  (subject,))]


def glass(actor: Actor, today: Today, event: Event, cfg: DetectConfig) -> list[Alert]:
    """The watch guard's verdict in the event: a watched subject released with a reason and
    no purpose (the glass broken), or refused; alerted at once, per outcome and subject."""
    alerts: list[Alert] = []
    refused = event.watch == "refused"
    for subject in event.watch_subjects:
        what = "was refused" if refused else "broke the glass"
        said = f" (reason: {event.reason[:40]})" if event.reason and not refused else ""
        alerts += _listed(actor, today, event, "watch.subject", subject, cfg,
                          f"{subject} is watched: {what} on it through {event.function} with no "
                          f"purpose{said}", {"glass": event.watch}, outcome=event.watch)
    return alerts
