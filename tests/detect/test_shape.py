"""Events with only the five required fields: look-ups judged by their shape.

Without reasons, roles or purpose verdicts, a look-up of one customer that no
work supports (nobody else looked the customer up, the person never came back to
them, it missed the functions the person's work always uses, or went through one
function alone where theirs use several) is *isolated*. Many of them, or one
customer returned to again and again, alert; honest multi-function work does not.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path
from typing import Any

from querygate.detect import RULES, Alert, DetectConfig, Detector, event_from_json
from querygate.detect._state import Readers
from tests.detect.office import Office, moment, working

MINIMAL = ("occurred_at", "actor_id", "function_name", "decision", "subjects", "seq")  # + the ref
DOCS = Path(__file__).parents[2] / "docs" / "detection.md"


def run_minimal(office: Office, config: DetectConfig | None = None) -> list[Alert]:
    detector = Detector(config)
    return [alert for line in office.lines()
            for alert in detector.feed(event_from_json({k: line[k] for k in MINIMAL}))]


def day_of(alert: Alert) -> int:
    return (dt.datetime.fromisoformat(alert.raised_at).date() - moment(0, 0).date()).days


def work_days(first: int, last: int) -> int:
    return sum(working(d) for d in range(first, last + 1))


def browse(office: Office, actor: str, days: range, functions: tuple[str, ...], *,
           per_day: int = 7, shared_with: str | None = None) -> None:
    """``per_day`` customers a working day, each through ``functions`` in turn."""
    for day in days:
        for _ in range(per_day) if working(day) else ():
            when, customer = moment(day, office.rng.uniform(9, 16)), office.rng.randrange(10**7)
            for k, function in enumerate(functions):
                office.event(when + dt.timedelta(seconds=40 * k), actor, function, [customer])
            if shared_with:  # a colleague works the same customer that day (billing, a second agent)
                office.event(when + dt.timedelta(hours=1), shared_with, "get_customer_by_id",
                             [customer])


def test_honest_ticket_work_without_reasons_raises_nothing() -> None:
    assert run_minimal(Office().honest(60)) == []


def test_a_slow_browser_without_reasons_is_caught_within_three_working_days() -> None:
    """Seven customers a working day, each through one function, where every honest look-up
    goes through two (the ticket, then the customer)."""
    office = Office().honest(50)
    browse(office, "a2", range(35, 50), ("get_customer_by_id",))
    alerts = run_minimal(office)
    alert = next(a for a in alerts if a.actor_id == "a2")
    assert alert.rule == "lookup.isolated" and alert.severity == "medium"
    assert work_days(35, day_of(alert)) <= 4  # raised when the 3rd day closes, on the 4th
    assert alert.features["kind"] == "one_function:get_customer_by_id"
    assert alert.baseline["one_function_share"] == 0
    assert alert.features["isolated"] >= alert.baseline["threshold"] >= 8
    assert alert.baseline["workflow"] == ["get_customer_by_id", "get_ticket"]
    assert alert.baseline["own_mean"] == 0 and len(alert.subjects) == alert.features["today"]
    assert alert.events and "nobody else" in alert.summary
    assert {a.actor_id for a in alerts} == {"a2"}


def test_browsing_through_several_functions_but_none_of_the_workflow() -> None:
    office = Office().honest(50)
    browse(office, "a2", range(35, 50), ("list_customer_orders", "list_customer_payments"))
    alerts = run_minimal(office)
    alert = next(a for a in alerts if a.actor_id == "a2")
    assert alert.rule == "lookup.isolated" and alert.features["kind"] == "off_workflow"
    assert "without any of get_customer_by_id, get_ticket" in alert.summary
    assert work_days(35, day_of(alert)) <= 4
    assert {a.actor_id for a in alerts} == {"a2"}


def test_one_function_alone_is_shallow_where_work_uses_several() -> None:
    """No function is on (nearly) every look-up here, so there is no workflow to miss, but
    honest look-ups go through two or three functions: one alone is shallow."""
    office = Office(agents=6).honest(0)
    for day in range(50):
        for n in range(6) if working(day) else ():
            for _ in range(20):
                when, customer = moment(day, office.rng.uniform(8, 16)), office.rng.randrange(10**6)
                functions = office.rng.sample(["get_customer", "get_orders", "get_payments",
                                               "get_notes"], office.rng.randint(2, 3))
                for k, function in enumerate(functions):
                    office.event(when + dt.timedelta(seconds=30 * k), f"a{n}", function,
                                 [customer])
    browse(office, "a4", range(35, 50), ("get_customer",))
    alerts = run_minimal(office)
    alert = next(a for a in alerts if a.actor_id == "a4")
    assert alert.rule == "lookup.isolated"
    assert alert.features["kind"] == "one_function:get_customer"
    assert alert.baseline["workflow"] == [] and alert.baseline["one_function_share"] == 0
    assert work_days(35, day_of(alert)) <= 4
    assert {a.actor_id for a in alerts} == {"a4"}


def test_honest_extra_work_through_the_workflow_does_not_alert() -> None:
    office = Office().honest(50)
    browse(office, "a2", range(35, 50), ("get_ticket", "get_customer_by_id",
                                         "list_customer_orders"))
    assert [a for a in run_minimal(office) if a.rule.startswith("lookup.")] == []


def test_customers_a_colleague_also_works_are_not_isolated() -> None:
    office = Office().honest(50)
    browse(office, "a2", range(35, 50), ("get_customer_by_id",), shared_with="a3")
    assert [a for a in run_minimal(office) if a.rule == "lookup.isolated"] == []


def test_a_drill_down_from_a_list_one_ran_is_not_isolated() -> None:
    office = Office().honest(50)
    for day in range(35, 50):
        if not working(day):
            continue
        sample = [office.rng.randrange(10**7) for _ in range(40)]
        office.event(moment(day, 9), "a2", "customers_created_between", sample)
        for k, customer in enumerate(sample[:12]):
            office.event(moment(day, 10 + k / 10), "a2", "get_customer_by_id", [customer])
    assert [a for a in run_minimal(office) if a.rule == "lookup.isolated"] == []


def test_looking_again_and_again_at_one_customer_off_the_workflow() -> None:
    office = Office().honest(45)
    for day in (36, 38):
        for k, function in enumerate(("list_customer_orders", "list_customer_payments",
                                      "get_account_balances")):
            office.event(moment(day, 11 + k / 60), "a5", function, [424242])
    alerts = run_minimal(office)
    alert = next(a for a in alerts if a.actor_id == "a5")
    assert alert.rule == "lookup.returning" and alert.subjects == ("customer:424242",)
    assert alert.features["lookups"] == 6 and alert.features["off_workflow"] == [True, True]
    assert day_of(alert) == 39  # when the second day closes
    assert {a.actor_id for a in alerts} == {"a5"}


def test_an_honest_ticket_worked_on_several_days_is_not_a_return() -> None:
    """A revisited ticket goes through the workflow every time, and here subjects come back
    often (every agent revisits), so a return by itself is no sign."""
    office = Office().honest(45)
    for n in range(6):
        for _ in range(60):
            customer, first = office.rng.randrange(10**7), office.rng.randrange(0, 40)
            for day in (first, first + 1, first + 3):
                if working(day):
                    for k, function in enumerate(("get_ticket", "get_customer_by_id",
                                                  "list_customer_orders")):
                        office.event(moment(day, 12 + k / 60), f"a{n}", function, [customer])
    assert run_minimal(office) == []


def test_where_subjects_seldom_come_back_a_third_day_alerts_at_the_lookup() -> None:
    office = Office().honest(45)
    for day in (36, 37, 38):
        for k, function in enumerate(("get_ticket", "get_customer_by_id")):
            office.event(moment(day, 11 + k / 60), "a1", function, [777])
    alert = next(a for a in run_minimal(office) if a.actor_id == "a1")
    assert alert.rule == "lookup.returning" and alert.subjects == ("customer:777",)
    assert day_of(alert) == 38 and alert.raised_at.endswith("T11:00:00.000Z")  # at the look-up
    assert alert.baseline["returning_share"] <= alert.baseline["returning_share_max"]
    assert "seldom" not in alert.summary and "come back on another day" in alert.summary


def test_with_reasons_in_the_events_the_shape_rules_still_judge_the_work_around() -> None:
    """A browser who invents a fresh ticket number for every customer gives each look-up a
    reason nobody else used, so the purpose rules find nothing wrong; nothing around the
    look-ups supports them, and the shape rules catch it."""
    office = Office().honest(50)
    for day in range(35, 50):
        for n in range(7) if working(day) else ():
            office.event(moment(day, office.rng.uniform(9, 16)), "a2", "get_customer_by_id",
                         [office.rng.randrange(10**7)], reason=f"TICKET-{90_000 + 10 * day + n}")
    detector = Detector()
    alerts = [a for line in office.lines() for a in detector.feed(event_from_json(line))]
    assert {a.actor_id for a in alerts} == {"a2"}
    first = alerts[0]
    assert first.rule == "lookup.isolated" and work_days(35, day_of(first)) <= 4
    assert not any(a.rule.startswith("purpose.") for a in alerts)


def test_shape_rules_can_be_disabled() -> None:
    office = Office().honest(50)
    browse(office, "a2", range(35, 50), ("get_customer_by_id",))
    quiet = dataclasses.replace(DetectConfig(), disabled_rules=frozenset(
        {"lookup.isolated", "lookup.returning"}))
    assert not any(a.rule.startswith("lookup.") for a in run_minimal(office, quiet))


def test_readers_tell_whether_anyone_else_looked_a_subject_up() -> None:
    readers = Readers()
    readers.read(1, "alice", 10)
    assert not readers.others(1, "alice", 5) and readers.others(1, "bob", 5)
    readers.read(1, "bob", 12)
    readers.read(1, "alice", 13)
    assert readers.others(1, "alice", 12) and not readers.others(1, "alice", 13)
    assert readers.others(1, "bob", 13)
    readers.read(2, "carol", 14)
    readers.prune(14)
    assert len(readers) == 1 and not readers.others(1, "bob", 0)


def test_memory_of_readers_and_returns_stays_within_its_window() -> None:
    office = Office(agents=4, per_day=30).honest(120)
    browse(office, "a1", range(20, 120), ("get_customer_by_id",))
    detector = Detector()
    sizes: dict[int, int] = {}
    for line in office.lines():
        detector.feed(event_from_json({k: line[k] for k in MINIMAL}))
        sizes[(dt.datetime.fromisoformat(line["occurred_at"]).date() - moment(0, 0).date()).days] \
            = detector.size()["recent_subjects"]
    late = [sizes[d] for d in range(60, 119) if d in sizes]
    assert max(late) <= 4 * 34 * 10 + 7 * 10  # look-ups in the readers' window, at most
    assert all(len(days) <= 7 for days in detector.actors["a1"].returns.values())


def test_every_setting_and_rule_is_documented() -> None:
    docs = DOCS.read_text()
    for field in dataclasses.fields(DetectConfig):
        assert f"`{field.name}`" in docs, field.name
    for rule in RULES:
        assert f"`{rule}`" in docs, rule


def test_documented_defaults_match_the_code() -> None:
    docs = DOCS.read_text()
    docs = docs[docs.index("### Settings"):]
    docs = docs[:docs.index("\n## ")]
    defaults: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(DetectConfig)
                                if f.name != "disabled_rules"}
    for name, value in defaults.items():
        found = re.search(rf"`{name}`\s+\(([^)]+)\)", docs)
        assert found, name
        assert float(found.group(1)) == float(value), name
