"""The detector over a synthetic office: quiet on honest work, each insider style caught."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from querygate.detect import Alert, DetectConfig, Detector, EventError, event_from_json
from tests.detect.office import Office, moment, working


def run(office: Office, config: DetectConfig | None = None) -> list[Alert]:
    detector = Detector(config)
    return [a for line in office.lines() for a in detector.feed(event_from_json(line))]


def first(alerts: list[Alert], actor: str) -> Alert:
    return next(a for a in alerts if a.actor_id == actor)


def working_days(from_day: int, alert: Alert) -> int:
    """Working days from ``from_day`` to the alert's day, both included."""
    day = (dt.datetime.fromisoformat(alert.raised_at).date() - moment(0, 0).date()).days
    return sum(working(d) for d in range(from_day, day + 1))


def test_honest_ticket_work_raises_nothing() -> None:
    assert run(Office().honest(60)) == []


def test_slow_browsing_without_reasons_is_caught_within_three_working_days() -> None:
    office = Office().honest(50)
    for day in range(35, 50):
        for _ in range(7) if working(day) else ():
            office.event(moment(day, office.rng.uniform(9, 16)), "a2", "get_customer_by_id",
                         [office.rng.randrange(10**6)])
    alerts = run(office)
    alert = first(alerts, "a2")
    assert alert.rule == "purpose.unexplained" and alert.severity in ("medium", "high")
    assert working_days(35, alert) <= 3
    assert alert.features["causes"] == {"no_reason": alert.features["today"]}
    assert alert.baseline["threshold"] >= 8 and alert.subjects and alert.events
    assert {a.actor_id for a in alerts} == {"a2"}


def test_a_reused_ticket_is_a_lookup_without_purpose() -> None:
    office = Office().honest(50)
    for day in range(35, 50):
        for _ in range(7) if working(day) else ():
            office.event(moment(day, office.rng.uniform(9, 16)), "a3", "get_customer_by_id",
                         [office.rng.randrange(10**6)], reason="TICKET-7")
    alert = first(run(office), "a3")
    assert alert.rule == "purpose.unexplained"
    assert "reason_elsewhere" in alert.features["causes"]
    assert working_days(35, alert) <= 3


def test_bulk_export_alerts_on_the_event_that_crosses_the_threshold() -> None:
    office = Office().honest(40)
    for k in range(8):
        office.event(moment(38, 10 + k / 10), "a1", "search_customers",
                     [office.rng.randrange(10**6) for _ in range(50)], reason="TICKET-9999")
    alerts = run(office)
    alert = first(alerts, "a1")
    assert alert.rule == "volume.spike" and alert.severity == "high"
    assert alert.features["function"] == "search_customers"
    crossing = [line["occurred_at"] for line in office.lines()
                if line["actor_id"] == "a1" and line["function_name"] == "search_customers"]
    assert alert.raised_at in crossing[1:]  # the threshold (60) is crossed by the second call


def test_a_stolen_token_at_night_from_a_new_address() -> None:
    office = Office().honest(40)
    night = moment(33, 26.5)  # 02:30 UTC on day 34
    for k in range(12):
        office.event(night + dt.timedelta(minutes=3 * k), "a4", "get_customer_by_id",
                     [office.rng.randrange(10**6)], addr="203.0.113.9")
    alert = first(run(office), "a4")
    assert alert.rule == "access.unusual" and alert.severity == "high"
    assert alert.features["new_to_everyone"] is True and alert.features["hour_utc"] == 2
    assert alert.raised_at.startswith("2026-02-08T02:")


def test_looking_again_and_again_at_one_customer() -> None:
    office = Office().honest(45)
    for day in (36, 38, 39):
        for k, function in enumerate(("get_customer_by_id", "list_customer_orders",
                                      "list_customer_payments")):
            office.event(moment(day, 11 + k / 60), "a5", function, [424242])
    alerts = [a for a in run(office) if a.actor_id == "a5"]
    back = alerts[0]  # the second day's first look-up, without a reason, is a return
    assert back.rule == "snoop.returning" and back.subjects == ("customer:424242",)
    assert back.features["subjects"]["customer:424242"]["why"] == ["no_reason"]
    alert = next(a for a in alerts if a.rule == "purpose.repeat")
    assert alert.subjects == ("customer:424242",)
    assert len(alert.features["days"]) == 2 and alert.features["lookups"] == 5


def test_break_glass_alerts_at_once_and_once_an_hour() -> None:
    office = Office(agents=2).honest(3)
    for minute in (0, 5, 70):
        office.event(moment(1, 12) + dt.timedelta(minutes=minute), "a0", "get_customer_by_id",
                     [1], reason="INC-1", context={"break_glass": "true"})
    glass = [a for a in run(office) if a.rule == "break_glass"]
    assert [a.severity for a in glass] == ["high", "high"]
    assert glass[0].raised_at.startswith("2026-01-06T12:00:00")
    assert glass[1].raised_at.startswith("2026-01-06T13:10:00")


def test_purpose_misses_in_warn_mode_with_alert_each() -> None:
    office = Office(agents=2).honest(3)
    for minute in (0, 10):
        office.event(moment(1, 12) + dt.timedelta(minutes=minute), "a1", "get_customer_by_id",
                     [5], reason="TICKET-1",
                     context={"purpose": "miss", "purpose_alert": "each"})
    misses = [a for a in run(office) if a.rule == "purpose.miss"]
    assert len(misses) == 1 and misses[0].severity == "low"


def test_minimal_events_still_catch_a_bulk_export() -> None:
    office = Office().honest(40)
    for k in range(8):
        office.event(moment(38, 10 + k / 10), "a1", "search_customers",
                     [office.rng.randrange(10**6) for _ in range(50)])
    keep = ("occurred_at", "actor_id", "function_name", "decision", "subjects")
    detector = Detector()
    alerts = [a for line in office.lines()
              for a in detector.feed(event_from_json({k: line[k] for k in keep}))]
    assert [(a.actor_id, a.rule) for a in alerts] == [("a1", "volume.spike")]


def test_memory_stays_within_its_windows() -> None:
    config = DetectConfig(novelty_days=30)
    office = Office(agents=4, per_day=30).honest(240)
    detector = Detector(config)
    sizes = {}
    for line in office.lines():
        detector.feed(event_from_json(line))
        day = (dt.datetime.fromisoformat(line["occurred_at"]).date() - moment(0, 0).date()).days
        sizes[day] = detector.size()
    late = [sizes[d]["subjects_per_person"] for d in range(120, 239) if d in sizes]
    assert max(late) < 1.3 * min(late)  # flat, not growing with the replay
    assert max(late) <= 4 * 34 * 30 * 1.1  # agents x look-ups a day x window
    assert sizes[238]["reasons"] <= 4 * 34 * 62


@pytest.mark.parametrize(("line", "message"), [
    ({"actor_id": "a", "function_name": "f", "decision": "allowed", "subjects": []},
     "missing occurred_at"),
    ({"occurred_at": "yesterday", "actor_id": "a", "function_name": "f", "decision": "allowed",
      "subjects": []}, "not an ISO 8601"),
    ({"occurred_at": "2026-01-01T00:00:00Z", "actor_id": "a", "function_name": "f",
      "decision": "allowed", "subjects": "customer:1"}, "subjects must be a list"),
])
def test_bad_events_say_what_is_wrong(line: dict[str, object], message: str) -> None:
    with pytest.raises(EventError, match=message):
        event_from_json(line)


def test_event_roles_are_sorted_whatever_they_hold() -> None:
    line = {"occurred_at": "2026-01-01T00:00:00Z", "actor_id": "a", "function_name": "f",
            "decision": "allowed", "subjects": [{"type": "customer", "id": 1}]}
    assert event_from_json(line | {"actor_roles": ["support", "billing"]}).roles == \
        ("billing", "support")
    assert event_from_json(line | {"actor_roles": ["billing", "support"]}).roles == \
        ("billing", "support")
    odd = event_from_json(line | {"actor_roles": [{"role": "x"}, "admin", ["y"]]})
    assert odd.roles == ("['y']", "admin", "{'role': 'x'}")  # unhashable: sorted, not cached
    assert event_from_json(line | {"actor_roles": [1]}).roles == ("1",)
    assert event_from_json(line | {"actor_roles": [True]}).roles == ("True",)  # 1 == True
    assert event_from_json(line | {"actor_roles": "support"}).roles is None
    missing = {k: v for k, v in line.items() if k not in ("decision", "subjects")}
    with pytest.raises(EventError, match="missing decision, subjects"):
        event_from_json(missing)


def test_disabled_rules_do_not_fire() -> None:
    office = Office().honest(40)
    for k in range(8):
        office.event(moment(38, 10 + k / 10), "a1", "search_customers",
                     [office.rng.randrange(10**6) for _ in range(50)])
    quiet = dataclasses.replace(DetectConfig(), disabled_rules=frozenset({"volume.spike"}))
    assert all(a.rule != "volume.spike" for a in run(office, quiet))
