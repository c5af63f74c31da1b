"""The snooper: the same few people looked up again and again, with no work behind it.

Returns add up over weeks (``snoop.returning``); declared watched subjects and
relationships alert at the look-up itself (``watch.subject``, ``watch.related``).
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import pytest

from querygate.detect import Alert, DetectConfig, Detector, Lists, backtest, event_from_json
from querygate.detect._snoop import evidence, weight
from querygate.detect._state import Actor
from querygate.detect._watch import load_watch, read_links_file, read_watch_file
from querygate.errors import ProjectError
from tests.detect.office import Office, moment, working
from tests.detect.test_shape import MINIMAL, day_of, work_days

TARGETS = (9_000_001, 9_000_002, 9_000_003)


def run(office: Office, lists: Lists | None = None, *,
        keep: tuple[str, ...] | None = None) -> list[Alert]:
    detector = Detector(lists=lists)
    return [alert for line in office.lines() for alert in detector.feed(
        event_from_json(line if keep is None else {k: line[k] for k in keep if k in line}))]


def snoop(office: Office, actor: str, days: range, *, reason: str | None = None,
          invent: bool = False, targets: tuple[int, ...] = TARGETS,
          function: str = "get_customer_by_id") -> None:
    """A look or two a working day, each at one of ``targets``, in turn."""
    k = 0
    for day in days:
        for _ in range(1 + day % 2) if working(day) else ():
            why = f"TICKET-{700_000 + k}" if invent else reason
            office.event(moment(day, 10 + k % 5), actor, function,
                         [targets[k % len(targets)]], reason=why)
            k += 1


def first(alerts: list[Alert], actor: str, rule: str) -> Alert:
    return next(a for a in alerts if a.actor_id == actor and a.rule == rule)


def test_three_customers_once_or_twice_a_day_add_up_within_five_working_days() -> None:
    office = Office().honest(50)
    snoop(office, "a2", range(35, 50))
    alerts = run(office)
    alert = first(alerts, "a2", "snoop.returning")
    assert work_days(35, day_of(alert)) <= 5
    assert set(alert.subjects) <= {f"customer:{c}" for c in TARGETS}
    assert alert.features["returns"] >= alert.baseline["threshold"] == 1
    detail = alert.features["subjects"]
    assert all(item["why"] == ["no_reason"] and len(item["days"]) >= 1
               for item in detail.values())
    assert "no reason" in alert.summary and "nobody else" in alert.summary
    assert alert.events
    assert {a.actor_id for a in alerts} == {"a2"}


def test_a_new_made_up_ticket_each_time_is_no_ticket_worked() -> None:
    """A made-up ticket is new each time, and nothing was opened through the ticket."""
    office = Office().honest(50)
    snoop(office, "a3", range(35, 50), invent=True, function="list_customer_orders")
    alert = first(run(office), "a3", "snoop.returning")
    assert work_days(35, day_of(alert)) <= 5
    assert {w for item in alert.features["subjects"].values() for w in item["why"]} \
        == {"new_reason"}


def test_the_ticket_they_work_that_day_does_not_name_the_customer() -> None:
    office = Office().honest(50)
    snoop(office, "a4", range(35, 50), reason="TICKET-5")  # TICKET-5 was a0's, for another
    alert = first(run(office), "a4", "snoop.returning")
    assert "a reason that names no ticket for them" in alert.summary


def test_a_long_running_case_worked_with_its_ticket_is_not_snooping() -> None:
    office = Office().honest(60)
    for day in range(30, 60):
        for k in range(2) if working(day) else ():
            when = moment(day, 11 + 3 * k)
            for n, function in enumerate(("get_ticket", "get_customer_by_id")):
                office.event(when + dt.timedelta(seconds=30 * n), "a1", function, [8_000_008],
                             reason="TICKET-900001")
    assert [a for a in run(office) if a.actor_id == "a1"] == []


def test_a_book_of_clients_looked_up_every_day_sets_its_own_bar() -> None:
    """A relationship manager's clients come back every day from their first day: their own
    rate of returns is the bar, and a day like the others does not cross it."""
    office = Office().honest(60)
    for day in range(60):
        for k, client in enumerate(range(5_000_000, 5_000_012)) if working(day) else ():
            if (day + k) % 3 == 0:
                office.event(moment(day, 9 + k / 3), "a5", "get_customer_by_id", [client])
    assert [a for a in run(office) if a.rule == "snoop.returning"] == []


def test_returning_without_reasons_off_the_workflow() -> None:
    """Without reasons, only the shape tells: here every honest look-up goes through the
    ticket and the customer, and these go through neither."""
    office = Office().honest(50)
    snoop(office, "a2", range(35, 50), function="list_customer_orders")
    alert = first(run(office, keep=MINIMAL), "a2", "snoop.returning")
    assert work_days(35, day_of(alert)) <= 5
    assert {w for item in alert.features["subjects"].values() for w in item["why"]} \
        == {"off_workflow"}


def _search(office: Office, day: int, hour: float, found: list[int],
            reason: str | None = None) -> None:
    office.event(moment(day, hour), "a2", "search_customers", found, reason=reason)


def _snooped(alerts: list[Alert]) -> list[Alert]:
    return [a for a in alerts if a.actor_id == "a2" and a.rule == "snoop.returning"]


@pytest.mark.parametrize("search", ["no reason", "a ticket", "none"])
def test_a_search_that_found_them_among_others_is_where_the_returns_start(search: str) -> None:
    """A name search with no reason finds the target among two others on Monday; on Tuesday
    the target is looked up alone, with no reason: that is a return, raised at the look-up.
    Without the search before it, or with a ticket given for the search (it explains the
    search, and the others found came with it), Tuesday's look-up is a first look."""
    target = f"customer:{TARGETS[0]}"
    office = Office().honest(50)
    if search != "none":
        _search(office, 35, 10, [TARGETS[0], 7_000_001, 7_000_002],
                reason="TICKET-5" if search == "a ticket" else None)
    office.event(moment(36, 11), "a2", "get_customer_by_id", [TARGETS[0]])
    alerts = _snooped(run(office))
    if search != "no reason":
        assert alerts == []
        return
    [alert] = alerts
    assert day_of(alert) == 36 and alert.features["returning_now"] == target
    assert alert.features["returns"] == 1 and alert.subjects == (target,)
    detail = alert.features["subjects"][target]
    assert detail["days"] == [str(moment(35, 0).date()), str(moment(36, 0).date())]
    assert detail["among_others"] == [str(moment(35, 0).date())]


@pytest.mark.parametrize("searches", [2, 3])
def test_each_later_search_that_found_them_again_counts_a_third(searches: int) -> None:
    """Looked up alone on Monday, then found by a search among three on the next days: each
    of those days is a third of a return (perhaps they were not the one searched for), so
    two such days stay under the bar of 1 and three reach it."""
    office = Office().honest(50)
    office.event(moment(35, 10), "a2", "get_customer_by_id", [TARGETS[0]])
    for k in range(searches):
        _search(office, 36 + k, 11, [TARGETS[0], 7_000_000 + 2 * k, 7_000_001 + 2 * k])
    alerts = _snooped(run(office))
    if searches == 2:
        assert alerts == []
        return
    [alert] = alerts
    assert alert.features["returns"] == 1 and day_of(alert) in (38, 39)
    assert len(alert.features["subjects"][f"customer:{TARGETS[0]}"]["among_others"]) == 3


def test_a_short_list_read_every_day_is_not_a_subject_they_come_back_to() -> None:
    """Three customers listed together every working day for a month, with no reason (a
    queue of three): none of them was ever looked up alone, so none makes returns."""
    office = Office().honest(60)
    for day in range(30, 60):
        if working(day):
            _search(office, day, 9, list(TARGETS))
    detector = Detector()
    alerts = [a for line in office.lines() for a in detector.feed(event_from_json(line))]
    assert _snooped(alerts) == []
    days = detector.actors["a2"].attention[f"customer:{TARGETS[0]}"]
    assert len(days) > 10 and {d[4] for d in days} == {3}  # noted, among three, not counted


def test_evidence_is_forgotten_after_the_window_and_state_stays_bounded() -> None:
    office = Office().honest(80)
    snoop(office, "a2", range(35, 37))
    detector = Detector()
    for line in office.lines():
        detector.feed(event_from_json(line))
    actor, start = detector.actors["a2"], detector.day - 28
    targets = {f"customer:{c}" for c in TARGETS}
    assert not targets & set(actor.attention)  # days older than snoop_window are dropped
    assert not targets & set(actor.visits)
    assert all(day >= start for day, _ in actor.visits.values())
    assert all(d[0] >= start for days in actor.attention.values() for d in days)


LISTS = Lists.of(watched=[("customer:4242", "board member")],
                 links=[("a1", "customer:1111", "self"), ("a1", "customer:2222", "family")])


def test_watched_subject_without_a_purpose_alerts_at_the_lookup() -> None:
    office = Office().honest(20)
    office.event(moment(15, 10.5), "a3", "list_customer_orders", [4242])
    alerts = run(office, LISTS)
    [alert] = [a for a in alerts if a.rule == "watch.subject"]
    assert alert.actor_id == "a3" and alert.severity == "high"
    [look] = [line for line in office.lines() if line["subjects"][0]["id"] == "4242"]
    assert alert.raised_at == look["occurred_at"] and alert.events == (str(look["seq"]),)
    assert alert.subjects == ("customer:4242",) and "board member" in alert.summary
    assert "without a reason" in alert.summary


def test_watched_subject_worked_through_its_ticket_raises_nothing() -> None:
    office = Office().honest(20)
    for n, function in enumerate(("get_ticket", "get_customer_by_id")):
        office.event(moment(15, 10 + n / 60), "a3", function, [4242], reason="TICKET-777777")
    office.event(moment(16, 10), "a4", "get_customer_by_id", [4242], reason="TICKET-777777")
    assert [a for a in run(office, LISTS) if a.rule.startswith("watch.")] == []


def test_own_family_and_colleague_records_alert_on_the_first_lookup() -> None:
    office = Office().honest(20)
    office.event(moment(12, 10), "a1", "get_customer_by_id", [1111], reason="TICKET-3")
    office.event(moment(13, 10), "a1", "get_customer_by_id", [2222])
    office.event(moment(14, 10), "a5", "get_customer_by_id", [1111])  # a1's own record
    found = {(a.actor_id, a.features["relationship"], day_of(a), a.severity)
             for a in run(office, LISTS) if a.rule == "watch.related"}
    assert found == {("a1", "self", 12, "medium"), ("a1", "family", 13, "high"),
                     ("a5", "colleague", 14, "high")}


def test_backtest_reads_the_lists_and_alerts_once_per_subject_and_week() -> None:
    office = Office().honest(20)
    for day in (12, 13, 14):
        office.event(moment(day, 10), "a2", "get_customer_by_id", [4242])
    lines = [json.dumps(line).encode() for line in office.lines()]
    alerts = [a for a in backtest(lines, lists=LISTS) if a.rule == "watch.subject"]
    assert [day_of(a) for a in alerts] == [12]


def test_list_files_name_the_bad_line(tmp_path: Path) -> None:
    watch = tmp_path / "watch.csv"
    watch.write_text("subject,why\ncustomer:1,public figure\n\n# comment\n42,oops\n")
    with pytest.raises(ProjectError, match=r"watch.csv:5: '42' is not a subject; write TYPE:ID"):
        read_watch_file(watch)
    watch.write_text("customer:1,public figure\ncustomer:2\n")
    assert read_watch_file(watch) == [("customer:1", "public figure"), ("customer:2", "watched")]
    links = tmp_path / "links.json"
    links.write_text(json.dumps([{"actor": "al@example.com", "subject": "customer:9",
                                  "kind": "self"}, {"subject": "customer:1"}]))
    with pytest.raises(ProjectError, match=r"links.json: entry 2 needs \"actor\""):
        read_links_file(links)
    csv = tmp_path / "links.csv"
    csv.write_text("actor,subject,kind\nal@example.com,customer:9,self\nbob@example.com\n")
    with pytest.raises(ProjectError, match=r"links.csv:3: expected actor,subject\[,kind\]"):
        read_links_file(csv)


def test_project_settings_for_the_lists(tmp_path: Path) -> None:
    (tmp_path / "watch.csv").write_text("customer:5,court order\n")
    settings = load_watch({"watch": {"subjects": ["customer:4", {"subject": "customer:6",
                                                                  "why": "board"}],
                                     "file": "watch.csv", "refresh_s": 60}}, tmp_path,
                          "querygate.yaml")
    assert settings.watch.inline == (("customer:4", "watched"), ("customer:6", "board"))
    assert settings.watch.file == tmp_path / "watch.csv" and settings.watch.refresh_s == 60
    problems: list[ProjectError] = []
    load_watch({"watch": {"file": "missing.csv", "refesh_s": 1},
                "relationships": {"sql": ""}}, tmp_path, "querygate.yaml", problems)
    messages = [p.message for p in problems]
    assert any("missing.csv does not exist" in m for m in messages)
    assert any("unknown key 'refesh_s'; did you mean 'refresh_s'?" in m for m in messages)
    assert any("detect.relationships.sql must be a SELECT" in m for m in messages)


def test_a_purpose_miss_counts_even_where_a_colleague_works_on_the_customer() -> None:
    """a1 works customer 9_000_001 with a ticket every day; a2's look-ups of it without a
    reason are purpose misses, which a colleague's work does not explain."""
    office = Office().honest(50)
    for day in filter(working, range(30, 50)):
        office.event(moment(day, 9), "a1", "get_customer_by_id", [TARGETS[0]],
                     reason="TICKET-CASE-1")
    office.event(moment(35, 11), "a2", "get_customer_by_id", [TARGETS[0]],
                 context={"purpose": "miss"})
    office.event(moment(37, 11), "a2", "get_customer_by_id", [TARGETS[0]],
                 context={"purpose": "miss"})
    alert = first(run(office), "a2", "snoop.returning")
    assert work_days(35, day_of(alert)) <= 3
    assert alert.features["subjects"][f"customer:{TARGETS[0]}"]["why"] == ["purpose_miss"]
    assert not [a for a in run(office) if a.actor_id == "a1"]


def test_an_alert_spends_its_evidence() -> None:
    """One return, then nothing: one alert, not one a week for as long as it stays in the
    window."""
    office = Office().honest(60)
    for day in (35, 37):
        office.event(moment(day, 11), "a2", "get_customer_by_id", [TARGETS[0]])
    alerts = [a for a in run(office) if a.rule == "snoop.returning"]
    assert [(a.actor_id, day_of(a)) for a in alerts] == [("a2", 37)]


def _busy_without_reasons(office: Office, per_day: int = 3, pool: int = 5_000) -> None:
    """a2 also looks up ``per_day`` customers a working day with no reason, from a pool of
    ``pool``: their unworked look-ups meet again by chance, so one return says little."""
    rng = random.Random(3)
    for day in filter(working, range(50)):
        for _ in range(per_day):
            office.event(moment(day, rng.uniform(8, 16)), "a2", "get_customer_by_id",
                         [8_000_000 + rng.randrange(pool)])


@pytest.mark.parametrize("snooping", [True, False])
def test_the_same_subject_again_stands_out_where_returns_by_chance_raise_the_bar(
        snooping: bool) -> None:
    """Where a person's own unworked look-ups meet again by chance, their bar for returns is
    several; but chance meetings are spread over different subjects. The same customer on a
    fourth day (two returns to a subject already returned to) reaches the bar for those, far
    below the bar for returns in all. Without the snooping, nothing."""
    office = Office().honest(50)
    _busy_without_reasons(office)
    if snooping:
        for day in (36, 38, 40, 42):
            office.event(moment(day, 17), "a2", "get_customer_by_id", [TARGETS[0]])
    alerts = _snooped(run(office))
    if not snooping:
        assert alerts == []
        return
    [alert] = alerts
    assert day_of(alert) == 42 and alert.features["returning_now"] == f"customer:{TARGETS[0]}"
    assert alert.features["returns"] < alert.baseline["threshold"]
    assert alert.features["again"] == 2 == alert.baseline["threshold_again"]
    assert "already come back to" in alert.summary
    assert alert.features["subjects"][f"customer:{TARGETS[0]}"]["days"][-1] == \
        str(moment(42, 0).date())


@pytest.mark.parametrize(("per_day", "judged"), [(3, True), (12, False)])
def test_returns_again_are_judged_where_returns_are_rare(per_day: int, judged: bool) -> None:
    """Three unworked look-ups a day meet again less than once a window: the bar for returns
    again is the floor's neighbour. Twelve a day meet several times a window, returns are
    part of the day, and only the bar for returns in all applies."""
    office = Office().honest(50)
    _busy_without_reasons(office, per_day)
    detector = Detector()
    for line in office.lines():
        detector.feed(event_from_json(line))
    today = detector.actors["a2"].today
    assert today is not None and today.snoop is not None
    day = today.snoop
    if judged:
        assert day.basis["expected_in_window"] < 1 and 1 < day.bar_again < day.bar
        assert day.basis["threshold_again"] == day.bar_again
    else:
        assert day.basis["expected_in_window"] >= 1
        assert day.bar_again == float("inf") and day.basis["threshold_again"] is None


@pytest.mark.parametrize(("causes", "returns", "again", "last_again"), [
    (("no_reason", "no_reason", "no_reason"), 2.0, 1.0, 1.0),
    (("no_reason", "new_reason", "no_reason"), 1.5, 0.5, 0.5),
    (("off_workflow",) * 4, 1.5, 0.5, 0.5),
    (("purpose_miss", "purpose_miss"), 1.0, 0.0, 0.0),
])
def test_returns_again_are_those_beyond_a_subjects_first_whole_return(
        causes: tuple[str, ...], returns: float, again: float, last_again: float) -> None:
    """A subject's unworked days: its returns, weighted by cause, and of them the returns
    again, beyond its first whole return. A half return read from shape (a new reason, off
    the workflow) does not make the next day a return again on its own. After an alert, only
    the days since count, each for what it added."""
    actor = Actor("a9", "support", 40)
    actor.attention["customer:1"] = [(20_000 + n, 1, None, why, 1) for n, why in enumerate(causes)]
    assert evidence(actor) == (returns, again)
    actor.reported = 20_000 + len(causes) - 2  # an alert spent all but the last day
    assert evidence(actor) == (weight(causes[-1]), last_again)


@pytest.mark.parametrize(("minutes_later", "alerted"), [(150, True), (45, True), (8, False)])
def test_coming_back_later_the_same_day_is_a_return_where_sittings_count(
        minutes_later: int, alerted: bool) -> None:
    """One customer, looked up alone with no reason at 10:00 and again later that day: with
    ``snoop_sitting_min`` set (30), a second sitting is a return, so a quiet person's bar of
    one is reached when the day closes. The next screen of the same contact, minutes later,
    is the same sitting."""
    office = Office().honest(45)
    office.event(moment(35, 10), "a2", "get_customer_by_id", [TARGETS[0]])
    office.event(moment(35, 10 + minutes_later / 60), "a2", "list_customer_orders",
                 [TARGETS[0]])
    detector = Detector(DetectConfig(snoop_sitting_min=30))
    alerts = [a for line in office.lines() for a in detector.feed(event_from_json(line))
              if a.rule == "snoop.returning"]
    if not alerted:
        assert alerts == []
        return
    assert [a.actor_id for a in alerts] == ["a2"]
    alert = alerts[0]
    assert work_days(35, day_of(alert)) <= 2  # when a2's day closes
    assert alert.features["returns"] == 1
    assert alert.features["subjects"] == {f"customer:{TARGETS[0]}": {
        "days": ["2026-02-09"], "lookups": 2, "why": ["no_reason"],
        "came_back_same_day": ["2026-02-09"]}}


def test_by_default_a_second_look_the_same_day_is_no_return() -> None:
    """Off by default: a customer who calls back in the afternoon looks the same."""
    office = Office().honest(45)
    office.event(moment(35, 10), "a2", "get_customer_by_id", [TARGETS[0]])
    office.event(moment(35, 14), "a2", "get_customer_by_id", [TARGETS[0]])
    assert [a for a in run(office) if a.rule == "snoop.returning"] == []
