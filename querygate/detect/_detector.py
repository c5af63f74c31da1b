"""The detector: one pass over audit events in time order, the same online and offline.

``Detector.feed(event)`` returns the alerts that event raised. Per-event rules
(break-glass, spikes, unusual access) fire on the event that crosses their
threshold. A person's day ends at their quietest hour (a night shift is one
day, not two); purpose rules run then, so a reason given later in the day still
counts. The day's look-ups are judged by their shape then too (``lookup.*``:
the functions each went through, whether anyone else or the person themselves
read the subject lately), with or without reasons in the events. Sustained-breadth
rules run at midnight UTC over every day closed since, against the whole peer
group's workload. Alerts raised at a close carry the ``occurred_at`` of the
event that triggered it.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from operator import itemgetter

from querygate.detect import _lookup as lookup
from querygate.detect import _rules as rules
from querygate.detect import _snoop as snoop
from querygate.detect import _watched as watched
from querygate.detect._alert import Alert
from querygate.detect._config import DetectConfig
from querygate.detect._event import Event
from querygate.detect._purpose import STRONG, Reasons, causes
from querygate.detect._state import (
    DAY,
    HOUR,
    Actor,
    Group,
    Limits,
    Readers,
    Shape,
    Today,
    Workflow,
    prune,
    touch,
)
from querygate.detect._watch import Lists

ADDRESS_DAYS = 180  # an address or function unused this long is new again
NO_GROUP = "*"
_NEVER = Limits(float("inf"), float("inf"), {}, float("inf"), float("inf"), float("inf"), True,
                {})


class Detector:
    """Per-person and peer-group baselines, updated event by event; memory bounded by windows."""

    def __init__(self, config: DetectConfig | None = None, lists: Lists | None = None) -> None:
        self.config = config or DetectConfig()
        self._lists = lists or Lists()
        self._listing = bool(self._lists)
        self.hour: int | None = None
        self.day = 0  # UTC day of the last flush
        self.first_day = 0
        self.events = 0
        self.actors: dict[str, Actor] = {}
        self.groups: dict[str, Group] = {}
        self.reasons = Reasons()
        self.addrs: dict[str, int] = {}  # every client address seen, with the day last seen
        self.readers = Readers()  # who read each subject lately, across the organisation
        self._open: list[Actor] = []

    @property
    def lists(self) -> Lists:
        """Watched subjects and relationships; the online service replaces them as they change."""
        return self._lists

    @lists.setter
    def lists(self, lists: Lists) -> None:
        self._lists, self._listing = lists, bool(lists)

    def feed(self, event: Event) -> list[Alert]:
        """Take one event (in time order) and return the alerts it raises."""
        self.events += 1
        hour = int(event.ts // HOUR)
        alerts: list[Alert] = []
        if self.hour is None:
            self.hour, self.day = hour, hour // 24
            self.first_day = self.day
        elif hour > self.hour:
            alerts = self._tick(hour, event)
        actor = self._actor(event)
        return alerts + self._observe(actor, event)

    def feed_all(self, events: Iterable[Event]) -> list[Alert]:
        return [alert for event in events for alert in self.feed(event)]

    def size(self) -> dict[str, int]:
        """How much the detector remembers (for the memory benchmark)."""
        return {
            "actors": len(self.actors),
            "groups": len(self.groups),
            "subjects_per_person": sum(len(a.seen) for a in self.actors.values()),
            "subjects_per_group": sum(len(g.touched) for g in self.groups.values()),
            "reasons": len(self.reasons),
            "addresses": len(self.addrs),
            "recent_subjects": len(self.readers),
            "visits": sum(len(a.visits) for a in self.actors.values()),
            "attention": sum(len(a.attention) for a in self.actors.values()),
        }

    # --- per event -------------------------------------------------------------------

    def _actor(self, event: Event) -> Actor:
        actor = self.actors.get(event.actor)
        if actor is not None and (event.roles is None or event.elevated):
            group = actor.group  # borrowed roles do not move a person to another peer group
        elif event.roles is not None:
            group = "+".join(event.roles) or "(no role)"
        else:
            group = NO_GROUP
        if actor is None:
            actor = self.actors[event.actor] = Actor(event.actor, group, self.config.history_days)
        actor.group = group
        actor.last_seen = self.day
        if group not in self.groups:
            self.groups[group] = Group(group, self.config.peer_days, mixed=group == NO_GROUP)
        if actor.today is None:
            today = actor.start_day(event.ts)
            self._open.append(actor)
            warm = self.day - self.first_day >= self.config.warmup_days
            limits = actor.limits = rules.limits_for(actor, self.groups[group], self.config) \
                if warm else _NEVER
            today.workflow = lookup.workflow_of(actor, self.config)
            today.snoop = snoop.start_day(actor, self.groups[group], today.day, self.config)
            today.snoop.expects = self.groups[group].expects_reasons(self.config.reason_coverage)
            if not warm:
                today.snoop.bar = float("inf")
            today.unexplained_before = self._unexplained_before(actor)
            today.spike_total = limits.spike_n
        return actor

    def _observe(self, actor: Actor, event: Event) -> list[Alert]:
        cfg, today, limits = self.config, actor.today, actor.limits
        assert today is not None and limits is not None
        hour = int(event.ts % DAY // HOUR)
        today.events += 1
        today.hours.add(hour)
        if event.ref:
            today.refs.append(event.ref)
        alerts = rules.break_glass(actor, event, today.day, hour, cfg)
        if event.watch is not None:
            alerts += watched.glass(actor, today, event, cfg)
        known = actor.active >= cfg.offhours_min_days
        odd_hour = known and actor.unusual_hour(hour, cfg.offhours_share)
        new_addr, org_new = self._new_address(actor, today, event.addr, known)
        if known and event.function not in actor.funcs:
            today.new_functions.add(event.function)
        if event.allowed:
            alerts += rules.purpose_miss(actor, today, event, cfg)
            alerts += self._subjects(actor, today, limits, event, odd_hour)
            if odd_hour and org_new:
                today.off_new.update(event.subjects[:1000])
        elif event.decision == "denied":
            today.denied += 1
            alerts += rules.denied(actor, today, limits, event, cfg)
        alerts += rules.unusual_access(actor, today, event, cfg, odd_hour=odd_hour,
                                       new_addr=new_addr, org_new_addr=org_new)
        touch(actor.funcs, event.function, self.day)
        if event.addr is not None:
            touch(actor.addrs, event.addr, self.day)
            touch(self.addrs, event.addr, self.day)
        return alerts

    def _new_address(self, actor: Actor, today: Today, addr: str | None,
                     known: bool) -> tuple[bool, bool]:
        """Whether ``addr`` is new to this person, and to everyone (still so all day long)."""
        if addr is None or not known:
            return False, False
        if addr in today.new_addrs:
            return True, today.new_addrs[addr]
        if addr in actor.addrs:
            return False, False
        today.new_addrs[addr] = addr not in self.addrs
        return True, today.new_addrs[addr]

    def _subjects(self, actor: Actor, today: Today, limits: Limits, event: Event,
                  odd_hour: bool) -> list[Alert]:
        cfg = self.config
        group = self.groups[actor.group]
        targeted = 0 < len(event.subjects) <= cfg.targeted_max
        seen, touched, mine = actor.seen, group.touched, today.subjects
        by_function = today.per_function.get(event.function)
        if by_function is None:
            by_function = today.per_function[event.function] = set()
            today.spike_total = max(today.spike_total, limits.spike_functions.get(
                event.function, limits.spike_function))
        by_function.update(event.subjects)
        lately, readers, day, who = self.day - cfg.isolated_days, self.readers, self.day, actor.id
        for subject in event.subjects:
            if subject in mine:
                continue
            mine.add(subject)
            key = hash(subject)
            last = seen.get(key)
            if last is None:
                if targeted and key not in touched:
                    today.novel.add(subject)
            elif last >= lately:
                today.returning.add(subject)
            # touch(seen, key, day) and touch(touched, key, day), inlined: this loop runs for
            # every subject of every event, a page of 50 is 50 turns
            if last != day:
                if last is not None:
                    del seen[key]
                seen[key] = day
            if touched.get(key) != day:
                touched.pop(key, None)
                touched[key] = day
        alerts = rules.volume(actor, today, limits, event, cfg)
        if targeted:
            looks = today.looks
            for subject in event.subjects:
                looks[subject] = looks.get(subject, 0) + 1
                readers.read(hash(subject), who, day)
                if event.ref and subject not in today.look_refs:
                    today.look_refs[subject] = event.ref
            if len(event.subjects) == 1:
                subject = event.subjects[0]
                today.solo.add(subject)
                if cfg.snoop_sitting_min:
                    then, sittings = today.sittings.get(subject, (event.ts, 1))
                    sittings += event.ts - then >= cfg.snoop_sitting_min * 60
                    today.sittings[subject] = (event.ts, sittings)
                workflow = today.workflow
                if workflow is not None and workflow.rare_returns and subject in actor.returns \
                        and limits is not _NEVER and subject not in today.listed \
                        and not readers.others(hash(subject), who, lately):
                    alerts += lookup.returning_now(actor, today, subject, workflow, event, cfg)
            else:  # a search that found a few: a partial look at each (``_snoop``)
                among, n = today.among, len(event.subjects)
                for subject in event.subjects:
                    if among.get(subject, n) >= n:
                        among[subject] = n
        else:
            today.listed.update(event.subjects)
        if targeted:
            if odd_hour:
                today.off_subjects.update(event.subjects)
                if event.ref:
                    today.off_refs.append(event.ref)
            alerts += self._targeted(actor, group, today, limits, event)
        elif event.reason is not None:
            self.reasons.fits(event.reason, event.subjects, actor.id, self.day)  # binds if new
        return alerts

    def _targeted(self, actor: Actor, group: Group, today: Today, limits: Limits,
                  event: Event) -> list[Alert]:
        """Look-ups of a few subjects: each needs a purpose (a reason bound to it, or a match)."""
        today.targeted_events += 1
        today.reasoned += event.reason is not None
        today.targeted.update(event.subjects)
        bound = self.reasons.bound.get(event.reason) if event.reason is not None else None
        alerts = snoop.observe(actor, today, event, bound, self.readers,
                               self.day - self.config.isolated_days, self.config)
        if self._listing:
            alerts += watched.lists_check(actor, today, event, self._lists, bound,
                                          group.reasons_are_specific(self.config.mismatch_share),
                                          self.config)
        found, mismatched = causes(actor, group, event, today.day, self.config, self.reasons)
        today.mismatched += mismatched
        for subject, cause in zip(event.subjects, found, strict=True):
            if cause is None:
                touch(actor.explained, subject, today.day)
                touch(group.explained, subject, today.day)
                today.strong.pop(subject, None)
                if today.unexplained.pop(subject, None) is not None:
                    days = actor.unexplained_days.get(subject)
                    if days and days[-1][0] == today.day:
                        days.pop()
                continue
            refs = today.unexplained.get(subject)
            if refs is None:
                refs = today.unexplained[subject] = []
                today.causes[cause] = today.causes.get(cause, 0) + 1
            if event.ref and len(refs) < rules.MAX_REFS:
                refs.append(event.ref)
            if cause not in STRONG:
                continue
            today.strong[subject] = today.strong.get(subject, 0) + 1
            days = actor.unexplained_days.setdefault(subject, [])
            if days and days[-1][0] == today.day:
                days[-1] = (today.day, days[-1][1] + 1)
            else:
                days.append((today.day, 1))
            if limits is not _NEVER:
                alerts += rules.one_subject(actor, today, event, self.config, limits.strict,
                                            group.explained, subjects=(subject,))
        return alerts + rules.unexplained(actor, today, today.unexplained_before, limits,
                                          event, self.config,
                                          factor=self.config.unexplained_intraday)

    def _unexplained_before(self, actor: Actor) -> int:
        """Unexplained subjects on the person's previous days inside the window."""
        window = self.config.unexplained_window - 1
        return sum(s.u for s in list(actor.history)[-window:]) if window > 0 else 0

    # --- per hour and per day --------------------------------------------------------

    def _tick(self, hour: int, event: Event) -> list[Alert]:
        """Close the days that have ended; at midnight UTC, flush the peer groups."""
        self.hour = hour
        alerts: list[Alert] = []
        still: list[Actor] = []
        for actor in self._open:
            assert actor.today is not None
            if actor.today.end <= event.ts:
                alerts += self._close(actor, event)
            else:
                still.append(actor)
        self._open = still
        if hour // 24 > self.day:
            self.day = hour // 24
            alerts += self._flush(event)
            self._prune()
        return alerts

    def _close(self, actor: Actor, event: Event) -> list[Alert]:
        """A person's day is over: purpose rules over the whole day, then the books close."""
        cfg, today, limits = self.config, actor.today, actor.limits
        assert today is not None and limits is not None
        alerts = rules.unexplained(actor, today, today.unexplained_before, limits, event, cfg)
        if limits is not _NEVER:
            alerts += rules.one_subject(actor, today, event, cfg, limits.strict,
                                        self.groups[actor.group].explained)
        workflow = today.workflow
        kinds, candidates = self._shape(actor, today, workflow)
        if candidates:  # a case worked again under its ticket is no return
            worked = snoop.purposed(actor, today, self.groups[actor.group], cfg)
            candidates = [(s, off) for s, off in candidates if s not in worked]
        if limits is not _NEVER:
            alerts += lookup.isolated_lookups(actor, today, kinds, workflow, event, cfg)
        alerts += lookup.returning(actor, today, candidates,
                                   None if limits is _NEVER else workflow, event, cfg)
        (returns, again, fresh, searched), found = snoop.close_day(
            actor, today, self.groups[actor.group], workflow, self.readers, event, cfg)
        alerts += found
        stat, _ = actor.close_day()
        stat.r, stat.r2, stat.a, stat.p = returns, again, fresh, searched
        actor.remember_peaks(stat, cfg.unexplained_window, cfg.peak_decay, cfg.baseline_lag)
        self.groups[actor.group].pending.append((actor, stat, today))
        return alerts

    def _shape(self, actor: Actor, today: Today,
               workflow: Workflow | None) -> tuple[dict[str, list[str]], list[tuple[str, bool]]]:
        """How the day's look-ups went (``today.shape``), and, where the person's look-ups are
        judged by their shape, the isolated ones by kind and the candidates for a return."""
        targeted = today.targeted
        used: dict[str, list[str]] = {}  # subject -> functions it was read through today
        with_function: dict[str, int] = {}
        for name, subjects in today.per_function.items():
            hit = subjects & targeted
            if hit:
                with_function[name] = len(hit)
                for subject in hit:
                    used.setdefault(subject, []).append(name)
        today.shape = shape = Shape(len(targeted), sum(len(f) == 1 for f in used.values()),
                                    len(today.returning & targeted), with_function)
        kinds: dict[str, list[str]] = {}
        candidates: list[tuple[str, bool]] = []
        if workflow is None:
            return kinds, candidates
        since, usual = self.day - self.config.isolated_days, workflow.functions
        for subject in sorted(today.solo - today.listed):
            if self.readers.others(hash(subject), actor.id, since):
                continue
            functions = used[subject]
            off = bool(usual) and usual.isdisjoint(functions)
            candidates.append((subject, off))
            if subject in today.returning:
                continue
            if off:
                kinds.setdefault("off_workflow", []).append(subject)
            elif len(functions) == 1 and workflow.single_is_shallow:
                kinds.setdefault(f"one_function:{functions[0]}", []).append(subject)
        shape.isolated = {kind: len(subjects) for kind, subjects in kinds.items()}
        return kinds, candidates

    def _flush(self, event: Event) -> list[Alert]:
        """Peer baselines take in the days closed since the last flush; CUSUMs step."""
        cfg, alerts = self.config, []
        for group in self.groups.values():
            pending, group.pending = group.pending, []
            if not pending:
                continue
            stats = [stat for _, stat, _ in pending]
            group.close_day([(a.id, stat) for a, stat, _ in pending], cfg.unexplained_window,
                            cfg.mixed_peer_quantile)
            factor_t = group.workload("t", statistics.median(s.t for s in stats), len(stats),
                                      cfg.cusum_alpha)
            factor_v = group.workload("v", statistics.median(s.v for s in stats), len(stats),
                                      cfg.cusum_alpha)
            for actor, stat, today in pending:
                alerts += rules.sustained(actor, stat, event, cfg, factor_t=factor_t,
                                          factor_v=factor_v, refs=today.refs)
        return alerts

    def _prune(self) -> None:
        cfg, day = self.config, self.day
        for group in self.groups.values():
            prune(group.touched, day - cfg.novelty_days)
            prune(group.explained, day - cfg.repeat_window - 2)
        prune(self.addrs, day - ADDRESS_DAYS)
        self.readers.prune(day - cfg.isolated_days - 2)
        self.reasons.prune(day - cfg.reason_days)
        for actor_id in [a.id for a in self.actors.values()
                         if a.last_seen < day - cfg.forget_days and a.today is None]:
            del self.actors[actor_id]
        for actor in self.actors.values():
            _prune_actor(actor, day, cfg)


def _prune_actor(actor: Actor, day: int, cfg: DetectConfig) -> None:
    prune(actor.seen, day - cfg.novelty_days)
    prune(actor.explained, day - cfg.explained_days - 2)
    prune(actor.addrs, day - ADDRESS_DAYS)
    prune(actor.funcs, day - ADDRESS_DAYS)
    start = day - cfg.repeat_window
    if actor.unexplained_days:
        actor.unexplained_days = {s: kept for s, ds in actor.unexplained_days.items()
                                  if (kept := [d for d in ds if d[0] > start])}
    prune(actor.visits, day - cfg.snoop_window, itemgetter(0))
    if actor.attention:
        window = day - cfg.snoop_window
        actor.attention = {s: looks for s, ds in actor.attention.items()
                           if (looks := [d for d in ds if d[0] > window])}
    if actor.returns:
        actor.returns = {s: recent for s, rs in actor.returns.items()
                         if (recent := [r for r in rs if r.day > start])}
    if len(actor.cooldown) > 8:
        actor.cooldown = {k: d for k, d in actor.cooldown.items() if day - d < cfg.cooldown_days + 2}
