"""Purpose from the stream itself: a reason names the subjects it was first given for.

A ticket id is given for one customer. Looking another customer up under the
same ticket, or with no reason where peers always give one, or where the
gateway's purpose check said no match, is a look-up without a purpose.

A reason first given by someone else for another subject (``reason_elsewhere``)
counts towards the totals but not towards the one-subject rules: an invented
ticket number can claim a real ticket's number before the real ticket is
worked, and that must not turn the honest agent who works it into a suspect.
"""

from __future__ import annotations

from querygate.detect._config import DetectConfig
from querygate.detect._event import Event
from querygate.detect._state import Actor, Group, touch

STRONG = frozenset({"no_reason", "purpose_miss", "reason_mismatch"})
MAX_BOUND = 1_000  # subjects remembered per reason (an audit sample may give one reason to many)


class Reasons:
    """Which subjects each reason was first given for, and by whom; forgotten when unused."""

    def __init__(self) -> None:
        self.bound: dict[str, tuple[frozenset[str], str]] = {}
        self.days: dict[str, int] = {}

    def fits(self, reason: str, subjects: tuple[str, ...], actor: str,
             day: int) -> tuple[list[bool], bool] | None:
        """Per subject, whether ``reason`` was first given for it, and whether it was this
        actor who gave it first; None when the reason is new (it is bound now)."""
        touch(self.days, reason, day)
        bound = self.bound.get(reason)
        if bound is None:
            self.bound[reason] = (frozenset(subjects[:MAX_BOUND]), actor)
            return None
        return [s in bound[0] for s in subjects], bound[1] == actor

    def prune(self, before: int) -> None:
        while self.days:
            reason = next(iter(self.days))
            if self.days[reason] >= before:
                return
            del self.days[reason], self.bound[reason]

    def __len__(self) -> int:
        return len(self.bound)


def causes(actor: Actor, group: Group, event: Event, day: int, cfg: DetectConfig,
           reasons: Reasons) -> tuple[list[str | None], bool]:
    """Per subject: None when the look-up has a purpose, else why not; and whether the
    reason was given for someone else (counted even where that is common)."""
    none: list[str | None] = [None] * len(event.subjects)
    if event.purpose == "miss":
        return ["purpose_miss"] * len(event.subjects), False
    if event.reason is not None:
        found = reasons.fits(event.reason, event.subjects, actor.id, day)
        if found is None or event.purpose == "match":
            return none, False
        fits, mine = found
        mismatched = not all(fits)
        if not group.reasons_are_specific(cfg.mismatch_share):
            return none, mismatched
        cause = "reason_mismatch" if mine else "reason_elsewhere"
        return [None if ok else cause for ok in fits], mismatched
    if event.purpose == "match" or not group.expects_reasons(cfg.reason_coverage):
        return none, False
    recent = day - cfg.explained_days
    return [None if actor.explained.get(s, recent - 1) >= recent else "no_reason"
            for s in event.subjects], False
