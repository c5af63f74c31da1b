"""Break the glass for watched subjects: a reason or a refusal where no purpose covers them,
audited, alerted by the detector on that very event, the list re-read without a restart."""

from __future__ import annotations

from pathlib import Path

import anyio
import psycopg
import pytest

from querygate.audit import COLUMNS, StoredEvent
from querygate.detect import Detector, event_from_stored
from querygate.errors import ProjectError
from querygate.gateway import build_guards
from querygate.project import load_project
from tests.demo_env import Demo, call, serving
from tests.guards.conftest import Config, latest_event, open_tickets, project_copy, unrelated

pytestmark = pytest.mark.anyio


def watching(*customers: int, mode: str) -> object:
    def edit(config: Config) -> None:
        config["detect"]["watch"] = {"subjects": [f"customer:{c}" for c in customers],
                                     "without_purpose": mode}
    return edit


def protected(demo: Demo, customer: int) -> list[str]:
    """The customer's values a refusal must never show, and its id."""
    with psycopg.connect(demo.admin_url) as conn:
        row = conn.execute("SELECT full_name, email FROM customers WHERE id = %s",
                           (customer,)).fetchone()
    assert row is not None
    return [row[0], row[1], f"customer:{customer}", f" {customer}"]


def alerts_on(demo: Demo, email: str, since: int) -> list[tuple[str, str, dict[str, object]]]:
    """What the detector raises on a person's audit events after ``since``."""
    with psycopg.connect(demo.admin_url) as conn:
        rows = conn.execute(f"SELECT {COLUMNS} FROM querygate.audit_events WHERE seq > %s AND "
                            "actor_email = %s ORDER BY seq", (since, email)).fetchall()
    detector = Detector()  # no watch list of its own: the guard's verdict is in the event
    found = detector.feed_all(event_from_stored(StoredEvent(row)) for row in rows)
    return [(a.rule, a.severity, dict(a.features)) for a in found if a.rule == "watch.subject"]


def head(demo: Demo) -> int:
    with psycopg.connect(demo.admin_url) as conn:
        row = conn.execute("SELECT coalesce(max(seq), 0) FROM querygate.audit_events").fetchone()
    return int(row[0]) if row else 0


async def test_a_watched_customer_needs_a_reason_then_the_glass_breaks_and_alerts(
        demo: Demo, tmp_path: Path) -> None:
    alice, email = demo.token("alice"), "alice@example.com"
    watched, plain = unrelated(demo, email, 2)
    mine = open_tickets(demo, email)[0]
    since = head(demo)
    async with serving(project_copy(demo, tmp_path, watching(watched, mine,
                                                             mode="reason"))) as client:
        refused = await call(client, alice, "get_customer_by_id", {"customer_id": watched},
                             reason=None)
        assert refused.status_code == 403 and "rows" not in refused.json()
        error = refused.json()["error"]
        assert error["rule"] == "watch.reason" and "with a reason" in error["message"]
        assert not any(value in error["message"] for value in protected(demo, watched))
        decision, code, context = latest_event(demo, email)
        assert (decision, code, context["watch"], context["watch_subjects"]) == \
            ("denied", "policy_denied", "refused", f"customer:{watched}")

        broken = await call(client, alice, "get_customer_by_id", {"customer_id": watched},
                            reason="my neighbour")
        assert broken.status_code == 200 and broken.json()["rows"]
        decision, _, context = latest_event(demo, email)
        assert (decision, context["watch"]) == ("allowed", "reason")

        # Not watched, or watched with a purpose (her own ticket): nothing asked, nothing noted.
        for customer in (plain, mine):
            response = await call(client, alice, "get_customer_by_id", {"customer_id": customer},
                                  reason=None)
            assert response.status_code == 200, response.text
            assert "watch" not in latest_event(demo, email)[2]
    raised = alerts_on(demo, email, since)
    assert [(rule, severity, features["glass"], features["subject"])
            for rule, severity, features in raised] == [
        ("watch.subject", "high", "refused", f"customer:{watched}"),
        ("watch.subject", "high", "reason", f"customer:{watched}")]  # purpose: miss


async def test_refuse_mode_refuses_even_with_a_reason_but_not_a_purpose(
        demo: Demo, tmp_path: Path) -> None:
    bob, email = demo.token("bob"), "bob@example.com"
    [watched] = unrelated(demo, email, 1)
    mine = open_tickets(demo, email)[0]
    async with serving(project_copy(demo, tmp_path, watching(watched, mine,
                                                             mode="refuse"))) as client:
        refused = await call(client, bob, "list_customer_orders", {"customer_id": watched},
                             reason="TICKET-1042")
        worked = await call(client, bob, "get_customer_by_id", {"customer_id": mine},
                            reason="TICKET-1042")
    assert refused.status_code == 403
    assert refused.json()["error"]["rule"] == "watch.refuse"
    assert "ask an admin" in refused.json()["error"]["message"]
    assert worked.status_code == 200 and worked.json()["rows"]


async def test_the_watch_list_from_sql_is_re_read_without_a_restart(
        demo: Demo, tmp_path: Path) -> None:
    alice, email = demo.token("alice"), "alice@example.com"
    customer = unrelated(demo, email, 3)[2]
    with psycopg.connect(demo.admin_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS board_members (customer_id int)")
        conn.execute("TRUNCATE board_members")
        conn.execute("GRANT SELECT ON board_members TO querygate_gateway")

    def from_sql(config: Config) -> None:
        config["detect"]["watch"] = {
            "sql": "SELECT 'customer:' || customer_id, 'board member' FROM board_members",
            "refresh_s": 0.05, "without_purpose": "reason"}

    async with serving(project_copy(demo, tmp_path, from_sql)) as client:
        before = await call(client, alice, "get_customer_by_id", {"customer_id": customer},
                            reason=None)
        with psycopg.connect(demo.admin_url, autocommit=True) as conn:
            conn.execute("INSERT INTO board_members VALUES (%s)", (customer,))
        await anyio.sleep(0.1)  # past refresh_s: the next call re-reads the list
        after = await call(client, alice, "get_customer_by_id", {"customer_id": customer},
                           reason=None)
    assert before.status_code == 200
    assert after.status_code == 403 and after.json()["error"]["rule"] == "watch.reason"


@pytest.mark.parametrize(("watch", "message"), [
    ({"subjects": ["customer:1"], "without_purpose": "sometimes"}, "must be one of alert"),
    ({"sql": "SELECT nope FROM nowhere", "without_purpose": "refuse"}, "cannot run its sql"),
])
async def test_a_bad_watch_setting_is_named_at_check_or_start(
        demo: Demo, tmp_path: Path, watch: dict[str, object], message: str) -> None:
    project = load_project(project_copy(demo, tmp_path,
                                        lambda c: c["detect"].update(watch=watch)))
    with pytest.raises(ProjectError, match=message):
        guards = build_guards(project)  # a wrong value stops here ...
        await guards[-1].open()  # ... a query that cannot run, here (the watch guard is last)
