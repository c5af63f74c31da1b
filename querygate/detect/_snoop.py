"""Returning attention, watched subjects and relationships: the snooper's rules.

A snooper comes back to the same few people, a look or two a day, for weeks,
with no work behind it. Each day a person looks a subject up, the look is
*worked* or not. It is worked when the gateway's purpose check matched; when
someone else looked the subject up lately (a colleague works on them); when it
was a drill-down from a list the person read; when a reason given for it was
given for it on an earlier day too (a ticket worked again), or was first given
for it by someone else (a colleague's ticket); or when a new reason names it on
its first day, through the person's workflow where they have one. Where peers
give no reasons, a look through the person's workflow is worked. A purpose
miss is never worked.

A subject looked up alone in a call is looked at. One that a search with no
reason (or no purpose) returned among a few others (at most ``targeted_max``)
was perhaps looked at: that day counts ``1/n`` of a return (``n`` the subjects
returned), and only for a subject the person also looked up alone without work
in the window, the one they keep coming back to. Every day an unworked subject comes back is one *return*; the
first day, alone or among others, is where it starts. Returns add up over
``snoop_window`` days (they do not reset each day), and ``snoop.returning``
fires when they reach the person's bar: ``snoop_floor``, or a ``snoop_tail``
Poisson tail of their own returns before the baseline lag (a relationship
manager's fixed book returns every day, and raises their bar).

``watch.subject`` and ``watch.related``, which fire at the look-up itself, are
in ``_watched``.
"""

from __future__ import annotations

from querygate.detect._alert import Alert
from querygate.detect._config import DetectConfig
from querygate.detect._event import Event
from querygate.detect._rules import MAX_REFS, date_of, fire, may, poisson_tail
from querygate.detect._state import Actor, Group, Look, Readers, Today, Workflow

MATCH, MISS, COLLEAGUE, OWN = 1, 2, 4, 8  # what a day's look-ups of a subject carried
MAX_REASONS = 4  # reasons remembered per subject and person
STRONG = frozenset({"purpose_miss", "no_reason", "reason_elsewhere"})
"""Causes read from purpose: a return with one counts 1; from shape alone, ``WEAK``."""
WEAK = 0.5
FOUND = frozenset({"purpose_miss", "no_reason"})
"""The causes with which a search that found a subject among others counts for it: no reason
where peers give one, or no purpose. A reason explains the search (a ticket's customer looked
for by name), and the others it found came with it."""
WHY = {
    "purpose_miss": "the purpose check found no purpose",
    "no_reason": "no reason",
    "reason_elsewhere": "a reason that names no ticket for them",
    "new_reason": "a new reason each time, not a ticket worked before",
    "off_workflow": "none of the functions their work goes through",
    "no_work": "no reason, and nobody else looked them up",
}


class SnoopDay:
    """One person's day, for these rules: what their look-ups of each subject carried."""

    __slots__ = ("again", "bar", "bar_again", "basis", "counted", "evidence", "expects", "flags",
                 "reasons")

    def __init__(self, bar: float, evidence: tuple[float, float], basis: dict[str, object],
                 bar_again: float = float("inf")) -> None:
        self.bar = bar  # returns that alert today (inf: not judged yet)
        self.bar_again = bar_again  # returns to a subject already returned to that alert today
        self.evidence, self.again = evidence  # both, in the window before today
        self.basis = basis
        self.flags: dict[str, int] = {}
        self.reasons: dict[str, set[str]] = {}
        self.counted: dict[str, str] = {}  # subject -> why, counted as a return during the day
        self.expects = False  # peers give reasons (as the day started)


def weight(why: str) -> float:
    return 1.0 if why in STRONG else WEAK


def _weights(counted: dict[str, str]) -> float:
    return sum(weight(why) for why in counted.values())


def reached(returns: float, bar: float) -> bool:
    """Returns at the bar (thirds from searches add up to whole returns)."""
    return returns >= bar - 1e-9


def _beyond_first(made: float, w: float) -> float:
    """Of a return of weight ``w`` to a subject that already had ``made``, the part beyond the
    subject's first whole return (a return *again*)."""
    return max(0.0, made + w - 1.0) - max(0.0, made - 1.0)


def _counted_again(actor: Actor, counted: dict[str, str]) -> float:
    """Of the returns counted during the day, those beyond a subject's first whole return."""
    again = 0.0
    for subject, why in counted.items():
        days = actor.attention.get(subject, [])
        if returning(days):
            made = sum(weight(d[3]) / d[4] for d in days[1:])
            again += _beyond_first(made, weight(why))
    return again


def returning(days: list[Look]) -> bool:
    """Whether a subject's unworked days make returns: more than one, and looked up alone on
    one of them at least (a subject only ever returned by searches among others is not one
    the person is shown to come back to: a queue of three, listed every day, is not)."""
    return len(days) > 1 and any(d[4] == 1 for d in days)


def evidence(actor: Actor, *, fresh: bool = True) -> tuple[float, float]:
    """Returns in the window: every unworked day of a subject after its first, weighted by
    its cause (a look without a purpose counts more than a look off the workflow), and by
    ``1/n`` for a day it only came back among ``n`` in a search; and, of those, the returns
    *again*: a subject's returns beyond its first whole one (the same subject on a third day
    or more). ``fresh``: only those after the person's last ``snoop.returning``; an alert
    spends what it reported, and the next one needs returns of its own."""
    after = actor.reported if fresh else -1
    total = again = 0.0
    for days in actor.attention.values():
        if returning(days):
            made = 0.0  # the subject's returns so far
            for d in days[1:]:
                w = weight(d[3]) / d[4]
                if d[0] > after:
                    total += w
                    again += _beyond_first(made, w)
                made += w
    return total, again


def start_day(actor: Actor, group: Group, day: int, cfg: DetectConfig) -> SnoopDay:
    """Today's bars, from the person's own days before the baseline lag.

    Returns: the returns they made, and the returns their unworked look-ups would make by
    chance among the ``N`` subjects their peers touch (``U² / 2N``: many unworked look-ups
    among few people meet again), with ``U·S / N`` for the ``S`` subjects their searches
    found among others (a look-up alone that meets one of them makes a return; two searches
    that meet make none).

    Returns again (a third unworked day of one subject, or more): the ones they made, and
    those by chance, ``U³ / 6N²`` (with ``U²·S / 2N²``). Chance meetings are spread over
    different subjects; three on the same one are rarer by another factor of about ``U / N``,
    so where a person's unworked look-ups meet now and then, and their bar for returns is
    above one, a subject they keep coming back to still stands out."""
    hist = list(actor.history)
    older = hist[:-cfg.baseline_lag] if cfg.baseline_lag else hist
    if len(older) < cfg.min_history_days:
        return SnoopDay(float("inf"), evidence(actor), {"own_days": len(older)})
    daily = sum(s.r for s in older) / len(older)
    daily_again = sum(s.r2 for s in older) / len(older)
    active = 1 + sum(1 for s in hist if s.day > day - cfg.snoop_window)
    unworked = sum(s.a for s in older) / len(older) * active
    searched = sum(s.p for s in older) / len(older) * active
    touched = max(len(group.touched), 1)
    chance = unworked * (unworked / 2 + searched) / touched
    chance_again = unworked ** 2 * (unworked / 3 + searched) / (2 * touched ** 2)
    expected = daily * active + chance
    expected_again = daily_again * active + chance_again
    floor = float(cfg.snoop_floor)
    bar = max(floor, poisson_tail(expected, cfg.snoop_tail))
    # judged where the person makes less than one return a window (by their own rate and by
    # chance): there a stray return or two sets the bar for returns at several, and a subject
    # come back to again still stands out. Where returns are part of the work (a book of
    # clients, customers who write in again), they land on the same subjects too, and the bar
    # for returns in all, from the person's own rate, is the one that says something
    bar_again = max(floor, poisson_tail(expected_again, cfg.snoop_tail)) \
        if expected < 1 else float("inf")
    return SnoopDay(bar, evidence(actor), {
        "own_days": len(older), "own_returns_a_day": round(daily, 4),
        "unworked_in_window": round(unworked, 1), "found_by_searches": round(searched, 1),
        "by_chance": round(chance, 4),
        "expected_in_window": round(expected, 3),
        "threshold_again": bar_again if bar_again < float("inf") else None,
        "own_returns_again_a_day": round(daily_again, 4),
        "again_by_chance": round(chance_again, 6),
        "floor": cfg.snoop_floor,
        "tail": cfg.snoop_tail, "window_days": cfg.snoop_window}, bar_again)


def observe(actor: Actor, today: Today, event: Event, bound: tuple[frozenset[str], str] | None,
            readers: Readers, lately: int, cfg: DetectConfig) -> list[Alert]:
    """A targeted look-up: note what it carried; a clear return may reach the bar now."""
    sd = today.snoop
    assert sd is not None
    flag = MATCH if event.purpose == "match" else MISS if event.purpose == "miss" else 0
    alerts: list[Alert] = []
    attention, flags = actor.attention, sd.flags
    for subject in event.subjects:
        bits = flag
        if event.reason is not None:
            sd.reasons.setdefault(subject, set()).add(event.reason)
            if bound is None:
                bits |= OWN
            elif subject in bound[0]:
                bits |= OWN if bound[1] == actor.id else COLLEAGUE
        if bits:
            flags[subject] = flags.get(subject, 0) | bits
        days = attention.get(subject)
        if not days:
            continue
        why = _plainly_unworked(actor, sd, subject, sd.expects) if \
            days[-1][0] < today.day and subject not in sd.counted and \
            len(event.subjects) == 1 else None
        if why is not None and subject not in today.listed and \
                (why == "purpose_miss" or not readers.others(hash(subject), actor.id, lately)):
            sd.counted[subject] = why
            if (reached(sd.evidence + _weights(sd.counted), sd.bar) or
                    reached(sd.again + _counted_again(actor, sd.counted), sd.bar_again)) and \
                    may(actor, "snoop.returning", today.day, cfg):
                alerts.append(_alert(actor, today, event, sd, cfg, now=subject))
    return alerts


def _plainly_unworked(actor: Actor, sd: SnoopDay, subject: str, expects: bool) -> str | None:
    """During the day, a return counts at once only when nothing can explain it (its cause,
    else None): a purpose miss; or no match, no colleague's ticket and no ticket carried on
    from an earlier day, with a reason (new) or without one where peers give reasons."""
    bits = sd.flags.get(subject, 0)
    if bits & MISS and not bits & MATCH:
        return "purpose_miss"
    if bits & (MATCH | COLLEAGUE):
        return None
    given = sd.reasons.get(subject)
    if given:
        prior = actor.visits.get(subject)
        if prior and not given.isdisjoint(prior[1]):
            return None
        return "new_reason" if bits & OWN else "reason_elsewhere"
    return "no_reason" if expects else None


def purposed(actor: Actor, today: Today, group: Group, cfg: DetectConfig) -> set[str]:
    """Today's subjects whose look-ups had a purpose of their own: a purpose match, or the
    ticket given for them on an earlier day too (a long-running case worked again)."""
    sd = today.snoop
    assert sd is not None
    specific = group.reasons_are_specific(cfg.mismatch_share)
    found = set()
    for subject in sd.flags.keys() | sd.reasons.keys():
        bits = sd.flags.get(subject, 0)
        prior = actor.visits.get(subject)
        named = bool(bits & (OWN | COLLEAGUE)) or not specific
        if bits & MATCH or (prior and named and
                            not sd.reasons.get(subject, set()).isdisjoint(prior[1])):
            found.add(subject)
    return found


def close_day(actor: Actor, today: Today, group: Group, workflow: Workflow | None,
              readers: Readers, event: Event, cfg: DetectConfig
              ) -> tuple[tuple[float, float, int, int], list[Alert]]:
    """Judge each subject the person looked up today; count returns; alert at the bar."""
    sd = today.snoop
    assert sd is not None
    day, since = today.day, today.day - cfg.isolated_days
    known = workflow is not None and workflow.looked >= cfg.workflow_min
    usual = workflow.functions if workflow is not None and known else None
    expects = group.expects_reasons(cfg.reason_coverage)
    specific = expects and group.reasons_are_specific(cfg.mismatch_share)
    used = _functions(today) if usual else {}
    before, fresh, searched = evidence(actor, fresh=False), 0, 0
    for subject in today.targeted:
        prior = actor.visits.pop(subject, None)
        given = sd.reasons.get(subject, set())
        bits = sd.flags.get(subject, 0)
        among = 1 if subject in today.solo else today.among.get(subject, 0)
        if among and subject not in today.listed and \
                (_missed(bits) or not readers.others(hash(subject), actor.id, since)):
            why = _unworked(bits, given, prior, subject in actor.attention,
                            expects, specific, usual, used.get(subject, ()))
            if why is not None and (among == 1 or why in FOUND):
                days = actor.attention.setdefault(subject, [])
                look = (day, today.looks.get(subject, 1), today.look_refs.get(subject), why, among)
                days.append(look)
                if len(days) == 1:
                    fresh += among == 1
                    searched += among > 1
                if among == 1 and today.sittings.get(subject, (0.0, 1))[1] > 1:
                    days.append(look)  # came back to it later the same day: a return too
        kept = tuple(given | set(prior[1])) if prior else tuple(given)
        actor.visits[subject] = (day, kept[:MAX_REASONS])
    alerts: list[Alert] = []
    after = evidence(actor, fresh=False)
    # today's, and earlier searches it confirmed; of them, to a subject already returned to
    returns, again = after[0] - before[0], after[1] - before[1]
    total = evidence(actor)
    if (reached(total[0], sd.bar) or reached(total[1], sd.bar_again)) and \
            may(actor, "snoop.returning", day, cfg):
        (sd.evidence, sd.again), sd.counted = total, {}
        alerts.append(_alert(actor, today, event, sd, cfg))
    return (returns, again, fresh, searched), alerts


def _missed(bits: int) -> bool:
    """The purpose check found no purpose, and never one that day: a colleague working on the
    subject gives this person none either."""
    return bool(bits & MISS) and not bits & MATCH


def _functions(today: Today) -> dict[str, list[str]]:
    used: dict[str, list[str]] = {}
    for name, subjects in today.per_function.items():
        for subject in subjects & today.targeted:
            used.setdefault(subject, []).append(name)
    return used


def _unworked(bits: int, given: set[str], prior: tuple[int, tuple[str, ...]] | None,
              unworked_before: bool, expects: bool, specific: bool, usual: frozenset[str] | None,
              functions: list[str] | tuple[()]) -> str | None:
    """Why a day's look-ups of one subject had no work behind them; None when they had."""
    if bits & MATCH:
        return None
    if bits & MISS:
        return "purpose_miss"
    if prior and not given.isdisjoint(prior[1]) and (bits & (OWN | COLLEAGUE) or not specific):
        return None  # the same ticket for it as on an earlier day
    if given and bits & COLLEAGUE:
        return None  # a colleague's ticket for it
    if given and (bits & OWN or not specific):  # a new ticket of their own for it: opened
        if prior is None:  # through the workflow; later, only where the last look was work
            return None if not usual or not usual.isdisjoint(functions) else "new_reason"
        return "new_reason" if unworked_before else None
    if expects:
        return "reason_elsewhere" if given else "no_reason"
    if usual is None:
        return None  # no reasons to read, and the person's shape of work is not known yet
    if usual:
        return None if not usual.isdisjoint(functions) else "off_workflow"
    return "no_work"


def _alert(actor: Actor, today: Today, event: Event, sd: SnoopDay, cfg: DetectConfig, *,
           now: str | None = None) -> Alert:
    """The alert, with each returning subject's days and why no work explains them; ``now``
    is the subject whose look-up reached the bar during the day."""
    during = sd.counted if now else {}
    back = {s: days for s, days in actor.attention.items() if returning(days) or s in during}
    actor.reported = today.day
    window = evidence(actor, fresh=False)
    total = round(window[0] + (_weights(during) if now else 0.0), 2)
    again = round(window[1] + (_counted_again(actor, during) if now else 0.0), 2)
    deep = not reached(sd.evidence + (_weights(during) if now else 0.0), sd.bar)
    detail: dict[str, dict[str, object]] = {}
    whys: set[str] = set()
    for subject, days in sorted(back.items(), key=lambda item: -len(item[1]))[:MAX_REFS]:
        whys.update(d[3] for d in days)
        if subject in during:
            whys.add(during[subject])
        why = {d[3] for d in days} | ({during[subject]} if subject in during else set())
        looks = {d[0]: d[1] for d in days}  # a day it came back to later holds two entries
        detail[subject] = {"days": [date_of(d) for d in looks] +
                           ([date_of(today.day)] if subject in during else []),
                           "lookups": sum(looks.values()), "why": sorted(why)}
        searched = [date_of(d[0]) for d in days if d[4] > 1]
        if searched:
            detail[subject]["among_others"] = searched  # only in a search that found a few
        twice = [date_of(d) for d in looks if sum(1 for e in days if e[0] == d) > 1]
        if twice:
            detail[subject]["came_back_same_day"] = twice  # a second sitting, a return
    words = "; ".join(WHY[w] for w in sorted(whys))
    names = ", ".join(list(detail)[:5])
    return fire(actor, "snoop.returning", "medium", event, today.day,
                f"came back {total:g} time{'' if total == 1 else 's'} within {cfg.snoop_window} "
                f"days to {len(detail)} "
                f"subject(s) ({names}) that no work of theirs explains: {words}; nobody else "
                f"looked them up (bar {sd.bar:g}" +
                (f"; {again:g} of them to a subject already come back to, bar "
                 f"{sd.bar_again:g})" if deep else ")"),
                features={"returns": total, "again": again, "subjects": detail,
                          "returning_now": now},
                baseline={"threshold": sd.bar, **sd.basis},
                refs=list(dict.fromkeys(d[2] for days in back.values() for d in days if d[2])) +
                     [r for r in (event.ref,) if r and now],
                subjects=detail)
