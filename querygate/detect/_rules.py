"""The rules: each compares what one person did with their own baseline and their peers'.

Where events carry reasons (or the gateway's purpose verdict), ``purpose.*`` judge
each look-up's purpose; ``lookup.*`` (``_lookup``) judge its shape.

Every rule returns ``Alert`` values that carry their evidence: the measured
features, the baseline they were compared with, and the events behind them.
A rule fires at most once per person per ``cooldown_days``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable

from querygate.detect._alert import Alert
from querygate.detect._config import DetectConfig
from querygate.detect._event import Event
from querygate.detect._state import (
    Actor,
    DayStat,
    Group,
    Limits,
    Today,
    mean_sd,
    quantile,
)

_EPOCH = dt.date(1970, 1, 1)
MAX_REFS = 20


def date_of(day: int) -> str:
    return (_EPOCH + dt.timedelta(days=day)).isoformat()


def may(actor: Actor, rule: str, day: int, cfg: DetectConfig) -> bool:
    last = actor.cooldown.get(rule)
    return cfg.enabled(rule) and (last is None or day - last >= cfg.cooldown_days)


def fire(actor: Actor, rule: str, severity: str, event: Event, day: int, summary: str, *,
          features: dict[str, object], baseline: dict[str, object], refs: Iterable[str],
          subjects: Iterable[str] = ()) -> Alert:
    actor.cooldown[rule] = day
    kept = tuple(dict.fromkeys(refs))[-MAX_REFS:]
    return Alert(actor.id, rule, severity, event.occurred_at, summary,
                 f"{rule}:{actor.id}:{date_of(day)}", features, baseline, kept,
                 tuple(sorted(subjects))[:MAX_REFS])


def poisson_tail(mean: float, tail: float) -> float:
    """The smallest count a Poisson(``mean``) reaches with probability at most ``tail``."""
    if mean > 500:  # far into the normal approximation
        return mean + 4.5 * math.sqrt(mean)
    p = cdf = math.exp(-mean)
    k = 0
    while 1.0 - cdf > tail:
        k += 1
        p *= mean / k
        cdf += p
    return float(k + 1)


def limits_for(actor: Actor, group: Group, cfg: DetectConfig) -> Limits:
    """A person's thresholds for a day, from their own recent days and their peers'."""
    hist, peer = list(actor.history), group.peer
    floor = float(cfg.spike_floor)
    basis: dict[str, float] = {f"peer_max_{k}": v for k, v in peer.items()}
    basis["own_days"] = len(hist)
    spike_n = max(floor, cfg.spike_peer * peer.get("subjects", 0.0))
    spike_t = max(floor, cfg.spike_peer * peer.get("lookups", 0.0))
    peer_functions = group.functions
    if group.mixed and len(hist) < cfg.min_history_days:
        # No roles in the events, and no baseline of one's own: this person's job is
        # unknown, so a function's bound is a busy user of it, not the typical member.
        peer_functions = group.functions_wide
        basis["peer_function_quantile"] = cfg.mixed_peer_quantile
    functions = {f: max(floor, cfg.spike_peer * most) for f, most in peer_functions.items()}
    unexplained = max(float(cfg.unexplained_floor),
                      cfg.unexplained_peer * peer.get("unexplained", 0.0))
    denied = max(float(cfg.denied_floor), 2 * peer.get("denied", 0.0))
    daily_u = peer.get("typical_unexplained", 0.0)
    if len(hist) >= cfg.min_history_days:
        day, decay = hist[-1].day + 1, cfg.peak_decay
        ns, ts = [s.n for s in hist], [s.t for s in hist]
        spike_n = max(spike_n, cfg.spike_personal * quantile(ns, 0.95),
                      2 * cfg.spike_max * actor.peak("n", day, decay))
        spike_t = max(spike_t, cfg.spike_personal * quantile(ts, 0.95),
                      cfg.spike_max * actor.peak("t", day, decay))
        for name in {f for s in hist for f in s.per_function}:
            used = [s.per_function[name] for s in hist if name in s.per_function]
            functions[name] = max(functions.get(name, floor),
                                  cfg.spike_personal * quantile(used, 0.95),
                                  cfg.spike_max * actor.peak(f"fn:{name}", day, decay))
        denied = max(denied, 3 * max(s.denied for s in hist))
        basis |= {"own_subjects_p95": quantile(ns, 0.95), "own_lookups_p95": quantile(ts, 0.95)}
    older = hist[:-cfg.baseline_lag] if cfg.baseline_lag else hist
    if len(older) >= cfg.min_history_days:  # the last days are not yet part of the baseline
        window = cfg.unexplained_window
        sums = [sum(s.u for s in older[i:i + window]) for i in range(len(older) - window + 1)]
        mean_u, sd_u = mean_sd(sums)
        worst = actor.peak("u", older[-1].day + 1, cfg.peak_decay)
        unexplained = max(float(cfg.unexplained_floor), peer.get("unexplained", 0.0), worst + 1,
                          poisson_tail(mean_u, cfg.unexplained_tail),
                          mean_u + cfg.unexplained_z * max(sd_u, mean_u ** 0.5, 1.0))
        basis |= {"own_unexplained_mean": round(mean_u, 2), "own_unexplained_sd": round(sd_u, 2),
                  "own_unexplained_worst": round(worst, 1)}
        daily_u = mean_u / cfg.unexplained_window
    chance = daily_u * daily_u * cfg.repeat_window / max(len(group.touched), 1)
    basis["repeat_by_chance"] = round(chance, 6)
    strict = chance > cfg.repeat_chance
    return Limits(spike_n, spike_t, functions, floor, unexplained, denied, strict, basis)


def break_glass(actor: Actor, event: Event, day: int, hour: int, cfg: DetectConfig) -> list[Alert]:
    """Every break-glass access is reviewed: one high alert per person per hour of use."""
    if not event.break_glass or not cfg.enabled("break_glass"):
        return []
    key = f"break_glass:{actor.id}:{date_of(day)}T{hour:02d}"
    if key in actor.cooldown:
        return []
    actor.cooldown[key] = day
    return [Alert(actor.id, "break_glass", "high", event.occurred_at,
                  f"break-glass access to {event.function}: every use is reviewed", key,
                  {"function": event.function, "subjects": len(event.subjects),
                   "reason": event.reason}, {},
                  tuple(r for r in (event.ref,) if r), event.subjects[:MAX_REFS])]


def purpose_miss(actor: Actor, today: Today, event: Event, cfg: DetectConfig) -> list[Alert]:
    """A purpose check in ``warn`` mode with ``alert: each``: the day's first miss alerts."""
    if event.purpose != "miss" or not event.purpose_alert or not cfg.enabled("purpose.miss") \
            or actor.cooldown.get("purpose.miss") == today.day:
        return []
    return [fire(actor, "purpose.miss", "low", event, today.day,
                  f"{event.function} released {len(event.subjects)} subject(s) the purpose check "
                  "did not allow (warn mode: allowed and recorded)",
                  features={"function": event.function, "reason": event.reason},
                  baseline={}, refs=[r for r in (event.ref,) if r], subjects=event.subjects)]


def volume(actor: Actor, today: Today, limits: Limits, event: Event,
           cfg: DetectConfig) -> list[Alert]:
    """Far more different subjects today than this person or their peers read in a day."""
    n, t = len(today.subjects), len(today.targeted)
    by_function = len(today.per_function.get(event.function, ()))
    function_limit = limits.spike_functions.get(event.function, limits.spike_function)
    total_limit = today.spike_total  # the largest of spike_n and each function's own today
    if n < total_limit and t < limits.spike_t and by_function < function_limit:
        return []
    if not may(actor, "volume.spike", today.day, cfg):
        return []
    return [fire(actor, "volume.spike", "high", event, today.day,
                  f"{n} different subjects today ({t} looked up one by one, {by_function} through "
                  f"{event.function}); thresholds {total_limit:.0f} / {limits.spike_t:.0f} / "
                  f"{function_limit:.0f}",
                  features={"subjects_today": n, "lookups_today": t,
                            "function": event.function, "function_subjects_today": by_function,
                            "events_today": today.events},
                  baseline={"threshold_subjects": round(total_limit, 1),
                            "threshold_lookups": round(limits.spike_t, 1),
                            "threshold_function": round(function_limit, 1), **limits.basis},
                  refs=today.refs)]


def unexplained(actor: Actor, today: Today, before: int, limits: Limits, event: Event,
                cfg: DetectConfig, *, factor: float = 1.0) -> list[Alert]:
    """Subjects looked up with no reason, a reason given for someone else, or no purpose match.

    Checked when the person's day closes (a reason given later that day still
    counts), and during the day against ``factor`` times the threshold.
    """
    total = before + len(today.unexplained)
    threshold = limits.unexplained * factor
    if total < threshold or not may(actor, "purpose.unexplained", today.day, cfg):
        return []
    severity = "high" if total >= 3 * limits.unexplained else "medium"
    refs = [r for rs in today.unexplained.values() for r in rs]
    causes = ", ".join(f"{k}: {v}" for k, v in sorted(today.causes.items()))
    return [fire(actor, "purpose.unexplained", severity, event, today.day,
                  f"{total} subjects looked up without a purpose over {cfg.unexplained_window} "
                  f"working days (threshold {threshold:.1f}); today {causes}",
                  features={"unexplained": total, "today": len(today.unexplained),
                            "causes": dict(today.causes)},
                  baseline={"threshold": round(threshold, 2), **limits.basis},
                  refs=refs, subjects=today.unexplained)]


def one_subject(actor: Actor, today: Today, event: Event, cfg: DetectConfig, strict: bool,
                worked: dict[str, int], subjects: Iterable[str] | None = None) -> list[Alert]:
    """One subject read again and again without a purpose: a celebrity, a colleague, an ex.

    Deep: ``deep_events`` look-ups in a day (checked when the day closes, as a reason
    given later that day still counts). Repeat: ``repeat_days`` days within
    ``repeat_window`` and ``repeat_lookups`` look-ups in all (a glance a day is not a
    look), checked at each look-up of ``subjects`` and at the close. Where this person
    looks up so many subjects without a purpose, among so few, that one comes back by
    chance (``Limits.strict``), the thresholds are one more day and three more look-ups.
    A subject a peer had a purpose for lately (``worked``) is work in progress.
    """
    deep = cfg.deep_events + 3 * strict if subjects is None else float("inf")
    repeat, lookups = cfg.repeat_days + strict, cfg.repeat_lookups + 3 * strict
    recent = today.day - cfg.repeat_window
    for subject in today.strong if subjects is None else subjects:
        count = today.strong.get(subject, 0)
        if not count or worked.get(subject, recent - 1) >= recent:
            continue
        refs = today.unexplained.get(subject, [])
        days = actor.unexplained_days.get(subject, [])
        total = sum(n for _, n in days)
        if count >= deep and may(actor, "purpose.deep_look", today.day, cfg):
            return [fire(actor, "purpose.deep_look", "medium", event, today.day,
                          f"{subject} looked up {count} times in a day without a purpose",
                          features={"subject": subject, "lookups": count},
                          baseline={"threshold": deep, "strict": strict}, refs=refs,
                          subjects=[subject])]
        if len(days) >= repeat and total >= lookups and \
                may(actor, "purpose.repeat", today.day, cfg):
            return [fire(actor, "purpose.repeat", "medium", event, today.day,
                          f"{subject} looked up {total} times without a purpose, on "
                          f"{len(days)} days within {cfg.repeat_window}",
                          features={"subject": subject, "lookups": total,
                                    "days": [date_of(d) for d, _ in days]},
                          baseline={"threshold_days": repeat, "threshold_lookups": lookups,
                                    "strict": strict},
                          refs=refs, subjects=[subject])]
    return []


def unusual_access(actor: Actor, today: Today, event: Event, cfg: DetectConfig, *,
                   odd_hour: bool, new_addr: bool, org_new_addr: bool) -> list[Alert]:
    """Reading at an hour this person never works: a few subjects from an address nobody
    here has used (a stolen token), or many look-ups from anywhere."""
    if not odd_hour or not may(actor, "access.unusual", today.day, cfg):
        return []
    off = len(today.off_subjects)
    if off < cfg.offhours_subjects and len(today.off_new) < cfg.new_address_subjects:
        return []
    where = ("an address nobody here has used" if org_new_addr else
             "an address this person never used" if new_addr else "their usual address")
    hour = int(event.ts % 86_400 // 3_600)
    return [fire(actor, "access.unusual", "high", event, today.day,
                  f"{max(off, len(today.off_new))} subjects read at an hour this person does not work "
                  f"({hour:02d}h UTC), the last through {event.function} from {where} "
                  f"({event.addr or 'unknown'})",
                  features={"client_addr": event.addr, "new_address": new_addr,
                            "new_to_everyone": org_new_addr, "off_hours_lookups": off,
                            "read_from_new_addresses": len(today.off_new),
                            "hour_utc": hour, "new_functions": sorted(today.new_functions)},
                  baseline={"active_days": actor.active,
                            "days_active_within_2h": sum(actor.hours[(hour + d) % 24]
                                                         for d in (-2, -1, 0, 1, 2)),
                            "threshold": cfg.new_address_subjects if org_new_addr
                            else cfg.offhours_subjects},
                  refs=[*today.off_refs, *(r for r in (event.ref,) if r)],
                  subjects=today.off_subjects | today.off_new)]


def denied(actor: Actor, today: Today, limits: Limits, event: Event,
           cfg: DetectConfig) -> list[Alert]:
    """Many refused calls: probing what the token may do."""
    if today.denied < limits.denied or not may(actor, "access.denied", today.day, cfg):
        return []
    return [fire(actor, "access.denied", "medium", event, today.day,
                  f"{today.denied} refused calls today (threshold {limits.denied:.0f})",
                  features={"denied_today": today.denied},
                  baseline={"threshold": limits.denied}, refs=today.refs)]


def sustained(actor: Actor, stat: DayStat, event: Event, cfg: DetectConfig, *,
              factor_t: float, factor_v: float, refs: Iterable[str]) -> list[Alert]:
    """Slow, steady breadth above one's own baseline (the Intesa pattern, by volume alone)."""
    found: list[Alert] = []
    for rule, cusum, value, factor in (("breadth.sustained", actor.breadth, stat.t, factor_t),
                                       ("breadth.novel", actor.novel, stat.v, factor_v)):
        mean, sd = cusum.mean, cusum.sd()
        z = cusum.step(value / factor, alpha=cfg.cusum_alpha, k=cfg.cusum_k,
                       warm=cfg.cusum_warm_days)
        if cusum.level < cfg.cusum_h or not may(actor, rule, stat.day, cfg):
            continue
        what = "looked up one by one" if rule == "breadth.sustained" else \
            "looked up that neither they nor their peers had touched lately"
        found.append(fire(
            actor, rule, "medium", event, stat.day,
            f"sustained rise in subjects {what}: {value} on {date_of(stat.day)} against a "
            f"baseline of {mean * factor:.1f} ± {sd * factor:.1f}; evidence {cusum.level:.1f} "
            f"(alarm at {cfg.cusum_h})",
            features={"day": date_of(stat.day), "count": value, "z": round(z, 2),
                      "evidence": round(cusum.level, 2)},
            baseline={"mean": round(mean * factor, 2), "sd": round(sd * factor, 2),
                      "workload_factor": round(factor, 3)}, refs=refs))
        cusum.level = 0.0
    return found
