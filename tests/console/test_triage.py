"""Triage in the console: alerts acknowledged with a note, access requests approved or denied;
each step audited with ``client: console``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import yaml

from querygate import identity
from querygate.detect import Alert, save_alert
from querygate.gateway import Gateway
from querygate.project import load_project
from tests.console.conftest import csrf_of
from tests.demo_env import Demo

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module", autouse=True)
def approvers(demo: Demo) -> Iterator[None]:
    """Admins approve requests for the billing role in this module's project."""
    config = demo.project_dir / "querygate.yaml"
    original = config.read_text(encoding="utf-8")
    raw = yaml.safe_load(original)
    raw["roles"]["billing"]["approvers"] = ["admin"]
    config.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    yield
    config.write_text(original, encoding="utf-8")


def last_event(demo: Demo, function: str) -> tuple[Any, ...]:
    with psycopg.connect(demo.admin_url) as conn:
        row = conn.execute("SELECT decision, actor_email, context FROM querygate.audit_events "
                           "WHERE function_name = %s ORDER BY seq DESC LIMIT 1",
                           (function,)).fetchone()
    assert row is not None, f"no {function} event"
    return tuple(row)


async def request_billing(demo: Demo, gateway: Gateway, reason: str) -> str:
    who = await gateway.authenticate(demo.token("alice"))
    async with await psycopg.AsyncConnection.connect(demo.gateway_url, autocommit=True) as conn:
        made = await identity.request_access(
            conn, who, load_project(demo.project_dir),
            identity.identity_settings(gateway.project).access, role="billing", duration="1h",
            reason=reason)
    return made.id


async def test_an_alert_is_acknowledged_with_a_note(as_user, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    with psycopg.connect(demo.admin_url) as conn:
        alice_id = conn.execute("SELECT id FROM querygate.users WHERE email = "
                                "'alice@example.com'").fetchone()[0]  # type: ignore[index]
    async with await psycopg.AsyncConnection.connect(demo.admin_url, autocommit=True) as conn:
        alert_id = await save_alert(conn, Alert(
            alice_id, "volume", "high", "2026-03-01T10:00:00.000Z",
            "alice read 412 customers in an hour, 30 times her usual", "console-test-1",
            {"subjects": 412}, {"subjects_p99": 14}, ("1",)), webhook=False)
    assert alert_id is not None
    carol = await as_user(demo.token("carol"))
    listing = await carol.get("/console/alerts")
    assert "alice read 412 customers" in listing.text and "alice@example.com" in listing.text
    page = await carol.get(f"/console/alerts/{alert_id}")
    assert page.status_code == 200 and "subjects_p99=14" in page.text
    assert '<label for="note">' in page.text
    empty = await carol.post(f"/console/alerts/{alert_id}/ack",
                             data={"csrf": csrf_of(page.text), "note": "  "})
    assert empty.status_code == 422 and "Say what your review found" in empty.text
    done = await carol.post(f"/console/alerts/{alert_id}/ack", data={
        "csrf": csrf_of(page.text), "note": "DSAR batch for case 7, approved by legal"})
    assert done.status_code == 200
    assert "acknowledged by carol@example.com" in " ".join(done.text.split())
    assert "DSAR batch for case 7" in done.text and "Acknowledge</button>" not in done.text
    decision, who, context = last_event(demo, "querygate.alerts.ack")
    assert (decision, who, context["client"], context["alert"]) == (
        "allowed", "carol@example.com", "console", alert_id)
    alice = await as_user(demo.token("alice"))
    assert (await alice.get(f"/console/alerts/{alert_id}")).status_code == 403


async def test_an_access_request_is_approved_and_another_denied(
        as_user, demo: Demo, gateway: Gateway) -> None:  # type: ignore[no-untyped-def]
    first = await request_billing(demo, gateway, "TICKET-88 refund dispute")
    second = await request_billing(demo, gateway, "just curious")
    alice = await as_user(demo.token("alice"))
    own = await alice.get("/console/access")
    assert "Nothing waits for you" in own.text and "TICKET-88 refund dispute" in own.text
    refused = await alice.post(f"/console/access/{first}/approve",
                               data={"csrf": csrf_of(own.text)})
    assert refused.status_code == 403  # never one's own
    assert last_event(demo, "querygate.access.approve")[0] == "denied"
    dave = await as_user(demo.token("dave"))
    page = await dave.get("/console/access")
    assert f'action="/console/access/{first}/approve"' in page.text
    assert f'formaction="/console/access/{second}/deny"' in page.text
    approved = await dave.post(f"/console/access/{first}/approve",
                               data={"csrf": csrf_of(page.text), "note": "ok for today"})
    assert approved.status_code == 200 and f"/console/access/{first}/" not in approved.text
    decision, who, context = last_event(demo, "querygate.access.approve")
    assert (decision, who, context["client"], context["requester"]) == (
        "allowed", "dave@example.com", "console", "alice@example.com")
    assert "billing" in (await gateway.authenticate(demo.token("alice"))).roles
    denied = await dave.post(f"/console/access/{second}/deny", data={"csrf": csrf_of(page.text)})
    assert denied.status_code == 200
    assert last_event(demo, "querygate.access.deny")[:2] == ("allowed", "dave@example.com")
    again = await dave.post(f"/console/access/{second}/approve",
                            data={"csrf": csrf_of(page.text)})
    assert again.status_code == 409 and "Already decided" in again.text


async def test_a_person_the_detector_suspended_is_reinstated_on_review(
        as_user, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    with psycopg.connect(demo.admin_url, autocommit=True) as conn:
        conn.execute("INSERT INTO querygate.users (id, email, kind, roles, status) VALUES "
                     "('usr_console_susp', 'susp@example.com', 'person', '{support}', "
                     "'suspended')")
    async with await psycopg.AsyncConnection.connect(demo.admin_url, autocommit=True) as conn:
        alert_id = await save_alert(conn, Alert(
            "usr_console_susp", "volume", "high", "2026-03-02T10:00:00.000Z",
            "susp read 900 customers", "console-test-2"), webhook=False)
    assert alert_id is not None
    carol = await as_user(demo.token("carol"))
    page = await carol.get(f"/console/alerts/{alert_id}")
    assert '<label for="reinstate">Reinstate susp@example.com' in page.text
    done = await carol.post(f"/console/alerts/{alert_id}/ack", data={
        "csrf": csrf_of(page.text), "note": "a data migration, ticket OPS-12", "reinstate": "yes"})
    assert done.status_code == 200 and "reinstated by carol@example.com" in done.text
    with psycopg.connect(demo.admin_url) as conn:
        status = conn.execute("SELECT status FROM querygate.users WHERE id = "
                              "'usr_console_susp'").fetchone()
    assert status == ("active",)
    assert last_event(demo, "querygate.alerts.ack")[2]["reinstated"] == "true"
