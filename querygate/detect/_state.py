"""What the detector remembers: bounded, time-windowed state per person and per peer group.

Every map here is kept in order of last use, so pruning what is older than its
window is a walk from the front; memory depends on the windows, not on how
long the detector has run.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from querygate.detect._snoop import SnoopDay

DAY = 86_400
HOUR = 3_600
Look = tuple[int, int, str | None, str, int]
"""A day a person looked a subject up with no work behind it: (day, look-ups, the first
look-up's ref, why, among): ``among`` is 1 when they looked it up alone that day, else the
fewest subjects of a call that returned it among others (a search that found a few)."""


def weekday_of(day: int) -> int:
    """0 is Monday (1970-01-01, day 0, was a Thursday)."""
    return (day + 3) % 7


def touch(recent: dict[Any, int], key: object, day: int) -> None:
    """Record ``key`` as used on ``day``, moving it to the end (most recent)."""
    if recent.get(key) != day:
        recent.pop(key, None)
        recent[key] = day


def prune(recent: dict[Any, Any], before: int,
          day_of: Callable[[Any], int] | None = None) -> None:
    """Drop every key last used before day ``before`` (they sit at the front). The value is
    that day, or ``day_of`` reads it from the value.

    One pass of one iterator: restarting ``iter()`` after each deletion would
    rescan the freed slots at the front, quadratic in what is dropped.
    """
    stale = []
    for key, value in recent.items():
        if (value if day_of is None else day_of(value)) >= before:
            break
        stale.append(key)
    for key in stale:
        del recent[key]


def quantile(values: list[int] | list[float], q: float) -> float:
    """The ``q`` quantile by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))])


def mean_sd(values: list[int] | list[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 0.0
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1)
    return mean, math.sqrt(var)


@dataclass(slots=True)
class DayStat:
    """One person's closed day."""

    day: int
    n: int  # distinct subjects
    t: int  # distinct subjects of targeted look-ups
    u: int  # distinct subjects looked up without a purpose
    v: int  # distinct subjects looked up that neither they nor their peers touched lately
    denied: int
    targeted_events: int
    reasoned: int
    mismatched: int  # reasoned look-ups of a subject the reason was not first given for
    per_function: dict[str, int] = field(default_factory=dict)
    shape: Shape | None = None  # how the day's targeted subjects were looked up
    r: float = 0.0  # returns that day: subjects looked up with no work behind them, on a day
    # before too (weighted, ``_snoop.weight``)
    r2: float = 0.0  # ... of them, to a subject already returned to in the window (a third day)
    a: int = 0  # subjects looked up that day with no work behind them, for the first time lately
    p: int = 0  # ... only found by a search among a few others, so


@dataclass(slots=True)
class Shape:
    """How one person's targeted look-ups of a day went: the basis of their workflow."""

    looked: int = 0  # distinct subjects looked up (targeted)
    single: int = 0  # ... through one function only
    returning: int = 0  # ... that this person had read on an earlier day, lately
    with_function: dict[str, int] = field(default_factory=dict)  # ... through each function
    isolated: dict[str, int] = field(default_factory=dict)  # isolated look-ups, by kind


class Today:
    """One person's day so far (their own day: it ends at their quietest hour)."""

    __slots__ = ("among", "causes", "day", "denied", "end", "events", "hours", "listed", "look_refs",
                 "looks", "mismatched", "new_addrs", "new_functions", "novel", "off_new",
                 "off_refs", "off_subjects", "per_function", "reasoned", "refs", "returning",
                 "shape", "sittings", "snoop", "solo", "spike_total", "strong", "subjects",
                 "targeted", "targeted_events", "unexplained", "unexplained_before", "workflow")

    def __init__(self, day: int, end: float) -> None:
        self.day = day
        self.end = end
        self.subjects: set[str] = set()
        self.targeted: set[str] = set()
        self.novel: set[str] = set()
        self.per_function: dict[str, set[str]] = {}
        self.unexplained: dict[str, list[str]] = {}  # subject -> refs of its events
        self.strong: dict[str, int] = {}  # subject -> look-ups with no purpose of one's own
        self.causes: dict[str, int] = {}
        self.new_functions: set[str] = set()
        self.new_addrs: dict[str, bool] = {}  # address first used today -> new to everyone
        self.off_subjects: set[str] = set()  # looked up (targeted) at an hour one never works
        self.off_new: set[str] = set()  # read at such an hour from an address new to everyone
        self.off_refs: deque[str] = deque(maxlen=20)
        self.refs: deque[str] = deque(maxlen=20)
        self.hours: set[int] = set()
        self.events = self.denied = self.targeted_events = self.reasoned = self.mismatched = 0
        self.looks: dict[str, int] = {}  # subject -> targeted look-ups of it today
        self.look_refs: dict[str, str] = {}  # subject -> the first such look-up
        self.solo: set[str] = set()  # subjects looked up alone (one subject in the call)
        # subject -> (its last look-up alone today, sittings so far): a look-up alone at least
        # snoop_sitting_min after the last one starts another sitting (only where that is set)
        self.sittings: dict[str, tuple[float, int]] = {}
        # subject -> the fewest subjects of a targeted call that returned it among others (a
        # search that found a few)
        self.among: dict[str, int] = {}
        self.listed: set[str] = set()  # subjects in a list this person read today (> targeted)
        self.returning: set[str] = set()  # subjects this person read on an earlier day, lately
        self.shape: Shape | None = None  # set when the day closes
        self.workflow: Workflow | None = None  # set when the day starts (``workflow_of``)
        self.snoop: SnoopDay | None = None  # set when the day starts (``_snoop.start_day``)
        # set when the day starts, as neither changes during it: the unexplained subjects of
        # the previous days in the window, and the volume limit for all functions used so far
        # (the largest of spike_n and each function's own; it grows as functions are added)
        self.unexplained_before = 0
        self.spike_total = 0.0

    def close(self) -> DayStat:
        return DayStat(self.day, len(self.subjects), len(self.targeted), len(self.unexplained),
                       len(self.novel), self.denied, self.targeted_events, self.reasoned,
                       self.mismatched, {f: len(s) for f, s in self.per_function.items()},
                       self.shape)


@dataclass(slots=True)
class Limits:
    """A person's thresholds for one day, computed at their first event of it."""

    spike_n: float
    spike_t: float
    spike_functions: dict[str, float]  # per function
    spike_function: float  # a function missing from spike_functions
    unexplained: float
    denied: float
    strict: bool  # one-subject rules: here a subject comes back by chance
    basis: dict[str, float]


@dataclass(frozen=True, slots=True)
class Workflow:
    """How a person usually looks subjects up, from their days before the baseline lag."""

    days: int  # closed days it was learnt from
    functions: frozenset[str]  # functions on most of their look-ups (a ticket, a case)
    single_is_shallow: bool  # most of their look-ups go through more than one function
    rare_returns: bool  # their subjects seldom come back on another day
    looked: int  # subjects looked up in the baseline
    single: float  # share looked up through one function only
    returning: float  # share they had read on an earlier day


@dataclass(slots=True)
class Cusum:
    """A one-sided CUSUM over a workload-adjusted daily count, with an EWMA baseline."""

    mean: float = 0.0
    var: float = 0.0
    level: float = 0.0
    days: int = 0

    def sd(self) -> float:
        return max(math.sqrt(self.var), math.sqrt(max(self.mean, 1.0)), 0.1 * self.mean)

    def step(self, x: float, *, alpha: float, k: float, warm: int) -> float:
        """Add one day; return its z-score (0 while warming up)."""
        if self.days < warm:
            self.days += 1
            delta = x - self.mean
            self.mean += delta / self.days
            self.var += (delta * delta - self.var) / self.days if self.days > 1 else 0.0
            return 0.0
        sd = self.sd()
        z = (x - self.mean) / sd
        self.level = max(0.0, self.level + min(z, 3.0) - k)
        kept = min(x, self.mean + 2 * sd)  # an attack raises the baseline only slowly
        delta = kept - self.mean
        self.mean += alpha * delta
        self.var = (1 - alpha) * (self.var + alpha * delta * delta)
        self.days += 1
        return z


class Actor:
    """One person (or one token's owner): their baselines and today's running counts."""

    __slots__ = ("active", "addrs", "attention", "boundary", "breadth", "cooldown", "explained",
                 "funcs", "group", "history", "hours", "id", "last_day", "last_seen", "limits",
                 "novel", "peaks", "reported", "returns", "seen", "today", "unexplained_days",
                 "visits", "weekend_days")

    def __init__(self, actor_id: str, group: str, history_days: int) -> None:
        self.id = actor_id
        self.group = group
        self.boundary = 0  # hour (UTC) at which this person's day starts: their quietest
        self.last_day = -1  # their last closed day
        self.last_seen = 0  # UTC day of their last event
        self.today: Today | None = None
        self.limits: Limits | None = None
        self.active = 0  # closed days with at least one event
        self.history: deque[DayStat] = deque(maxlen=history_days)
        self.hours = [0] * 24  # active days per hour of day (UTC)
        self.weekend_days = 0
        self.funcs: dict[str, int] = {}
        self.addrs: dict[str, int] = {}
        self.seen: dict[int, int] = {}  # hash(subject) -> day last read
        self.explained: dict[str, int] = {}  # subject -> day last read with a purpose
        self.unexplained_days: dict[str, list[tuple[int, int]]] = {}  # subject -> (day, look-ups)
        self.returns: dict[str, list[Return]] = {}  # isolated subject -> the days it was read
        # subject -> (day last looked up, reasons given for it lately), in order of that day
        self.visits: dict[str, tuple[int, tuple[str, ...]]] = {}
        # subject -> the days it was looked up with no work behind it (``Look``)
        self.attention: dict[str, list[Look]] = {}
        self.cooldown: dict[str, int] = {}
        self.reported = -1  # the day of their last snoop.returning: returns up to it are spent
        self.peaks: dict[str, tuple[float, int]] = {}  # count -> (busiest value, its day)
        self.breadth = Cusum()
        self.novel = Cusum()

    def start_day(self, ts: float) -> Today:
        """Open the person's day that ``ts`` falls in; it ends at their next boundary."""
        shifted = ts - self.boundary * HOUR
        day = max(int(shifted // DAY), self.last_day + 1)
        end = max((int(shifted // DAY) + 1) * DAY + self.boundary * HOUR, ts + 1)
        self.today = Today(day, end)
        return self.today

    def close_day(self) -> tuple[DayStat, Today]:
        today = self.today
        assert today is not None
        stat = today.close()
        self.history.append(stat)
        self.active += 1
        for hour in today.hours:
            self.hours[hour] += 1
        self.weekend_days += weekday_of(today.day) >= 5
        self.last_day = today.day
        self.today, self.limits = None, None
        if self.active >= 5:
            self.boundary = quietest_hour(self.hours)
        return stat, today

    def remember_peaks(self, stat: DayStat, window: int, decay: float, lag: int) -> None:
        """Keep each count's busiest day for months (fading): on-call weeks, monthly audits.

        Unexplained look-ups join ``lag`` days late, like the baseline they bound, so
        the first days of a new pattern cannot raise its own threshold.
        """
        self.raise_peak("n", stat.n, stat.day, decay)
        self.raise_peak("t", stat.t, stat.day, decay)
        older = list(self.history)[:-lag] if lag else list(self.history)
        if older:
            self.raise_peak("u", sum(s.u for s in older[-window:]), older[-1].day, decay)
            last = older[-window:]
            for kind in {k for s in last if s.shape for k in s.shape.isolated}:
                self.raise_peak(f"iso:{kind}", sum(isolated(s, kind) for s in last),
                                older[-1].day, decay)
        for name, count in stat.per_function.items():
            self.raise_peak(f"fn:{name}", count, stat.day, decay)
        if len(self.peaks) > 64:  # functions long unused fade out of memory
            self.peaks = {k: v for k, v in self.peaks.items()
                          if self.peak(k, stat.day, decay) >= 1.0}

    def peak(self, name: str, day: int, decay: float) -> float:
        """The busiest value of a count, fading by ``decay`` a day since it happened."""
        value, when = self.peaks.get(name, (0.0, day))
        return value * decay ** max(0, day - when)

    def raise_peak(self, name: str, value: float, day: int, decay: float) -> None:
        if value > 0 and value >= self.peak(name, day, decay):
            self.peaks[name] = (value, day)

    def unusual_hour(self, hour: int, share: float) -> bool:
        """True when the person has (almost) never worked within two hours of ``hour``."""
        near = sum(self.hours[(hour + d) % 24] for d in (-2, -1, 0, 1, 2))
        return near < share * max(1, self.active)


def isolated(stat: DayStat, kind: str) -> int:
    """A closed day's isolated look-ups of one kind (0 where the day was not judged)."""
    return stat.shape.isolated.get(kind, 0) if stat.shape else 0


@dataclass(slots=True)
class Return:
    """One day an isolated subject was looked up by one person."""

    day: int
    lookups: int
    off_workflow: bool
    ref: str | None


class Readers:
    """Who looked each subject up lately (a targeted look-up, not a list that named it),
    across the organisation, in order of last look-up.

    For each subject: the day of its last look-up, by whom, and the last day
    anyone else looked it up. Enough to say whether anyone but one person did
    since a day, at one dictionary look-up.
    """

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: dict[int, tuple[int, str, int]] = {}

    def read(self, key: int, actor: str, day: int) -> None:
        entry = self.last.pop(key, None)
        if entry is None:
            self.last[key] = (day, actor, -1)
        elif entry[1] == actor:
            self.last[key] = (day, actor, entry[2])
        else:
            self.last[key] = (day, actor, entry[0])

    def others(self, key: int, actor: str, since: int) -> bool:
        """Whether anyone but ``actor`` read the subject on day ``since`` or later."""
        entry = self.last.get(key)
        if entry is None:
            return False
        day, last, other = entry
        return (day if last != actor else other) >= since

    def prune(self, before: int) -> None:
        prune(self.last, before, itemgetter(0))

    def __len__(self) -> int:
        return len(self.last)


def quietest_hour(hours: list[int]) -> int:
    """The middle of the quietest six hours: where a person's day should end and begin."""
    return min(range(24), key=lambda h: (sum(hours[(h + d) % 24] for d in range(-3, 3)), h))


class Group:
    """A peer group (people holding the same roles): what they touch and how much."""

    __slots__ = ("coverage", "days", "explained", "functions", "functions_wide", "mismatch",
                 "mixed", "name", "peer", "pending", "touched", "typical")

    def __init__(self, name: str, peer_days: int, *, mixed: bool = False) -> None:
        self.name = name
        self.mixed = mixed  # no roles in the events: everyone, whatever their job
        self.touched: dict[int, int] = {}  # hash(subject) -> day last read by anyone here
        self.explained: dict[str, int] = {}  # subject -> day someone here last had a purpose
        self.days: deque[list[tuple[str, DayStat]]] = deque(maxlen=peer_days)
        self.pending: list[tuple[Actor, DayStat, Today]] = []  # closed since the last flush
        self.coverage: float | None = None  # share of targeted look-ups that give a reason
        self.mismatch: float | None = None  # share of reasoned look-ups off their reason
        self.peer: dict[str, float] = {}  # the typical member's busiest day, per count
        self.functions: dict[str, float] = {}  # the same, per function
        self.functions_wide: dict[str, float] = {}  # a higher quantile of it (mixed groups)
        self.typical: dict[str, float] = {}  # EWMA of the median member's day, per count

    def close_day(self, stats: list[tuple[str, DayStat]], window: int,
                  wide: float = 0.9) -> None:
        """Take in the days closed since the last flush; recompute the peer baselines.

        A peer baseline is the upper quartile, over members, of each member's
        busiest day in the window: one insider among four or more peers cannot
        move it far. A mixed group also keeps the ``wide`` quantile per function.
        """
        self.days.append(stats)
        members: dict[str, list[DayStat]] = {}
        for day in self.days:
            for actor, stat in day:
                members.setdefault(actor, []).append(stat)
        self.coverage = _median_share(members, lambda s: s.reasoned, lambda s: s.targeted_events)
        self.mismatch = _median_share(members, lambda s: s.mismatched, lambda s: s.reasoned)
        self.peer = {
            "subjects": _typical(members, lambda s: s.n),
            "lookups": _typical(members, lambda s: s.t),
            "unexplained": quantile([_worst_window(days, window) for days in _enough(members)],
                                    0.75),
            "denied": _typical(members, lambda s: s.denied),
            "typical_unexplained": quantile([sum(s.u for s in days) / len(days)
                                             for days in _enough(members)], 0.5),
        }
        busiest: dict[str, list[int]] = {}
        for days in members.values():
            top: dict[str, int] = {}
            for stat in days:
                for name, count in stat.per_function.items():
                    top[name] = max(top.get(name, 0), count)
            for name, count in top.items():
                busiest.setdefault(name, []).append(count)
        self.functions = {name: quantile(v, 0.75) for name, v in busiest.items()}
        if self.mixed:
            self.functions_wide = {name: quantile(v, wide) for name, v in busiest.items()}

    def workload(self, name: str, median: float, members: int, alpha: float) -> float:
        """How busy the day was for the whole group, against a typical day (1.0 = typical).

        Dividing a person's count by it keeps a busy day for everyone from looking
        like one person's rise. Fewer than three active peers tell nothing: 1.0.
        """
        if members < 3:
            return 1.0
        typical = self.typical.get(name)
        self.typical[name] = _ewma(typical, median, alpha)
        if typical is None:
            return 1.0
        return min(4.0, max(0.25, (median + 1) / (typical + 1)))

    def expects_reasons(self, threshold: float) -> bool:
        return self.coverage is not None and self.coverage >= threshold

    def reasons_are_specific(self, threshold: float) -> bool:
        """Reasons here name one subject (a ticket), so a reason reused elsewhere is a sign."""
        return self.mismatch is None or self.mismatch <= threshold


def _typical(members: dict[str, list[DayStat]], value: Callable[[DayStat], int]) -> float:
    """A busy peer's busiest day: the upper quartile, over members with five days or more,
    of each one's busiest day. One insider among four or more peers cannot move it far."""
    return quantile([max(value(s) for s in days) for days in _enough(members)], 0.75)


def _enough(members: dict[str, list[DayStat]]) -> list[list[DayStat]]:
    """Members with five days or more in the window (all of them, if none has)."""
    return [days for days in members.values() if len(days) >= 5] or list(members.values())


def _worst_window(days: list[DayStat], window: int) -> int:
    """The most unexplained subjects over ``window`` consecutive days of one member."""
    values = [s.u for s in days]
    return max(sum(values[i:i + window]) for i in range(max(1, len(values) - window + 1)))


def _median_share(members: dict[str, list[DayStat]], part: Callable[[DayStat], int],
                  whole: Callable[[DayStat], int]) -> float | None:
    """The median member's share (members with 20 or more in ``whole``): robust to a few."""
    shares = []
    for days in members.values():
        total = sum(whole(s) for s in days)
        if total >= 20:
            shares.append(sum(part(s) for s in days) / total)
    return quantile(shares, 0.5) if shares else None


def _ewma(previous: float | None, value: float, alpha: float) -> float:
    return value if previous is None else (1 - alpha) * previous + alpha * value
