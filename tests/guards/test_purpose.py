"""Reasons and purpose checks: the Intesa pattern refused from the first unrelated record,
honest ticket-driven work never refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from querygate.errors import ProjectError
from querygate.project import load_project
from querygate.purpose import load_requirements
from tests.demo_env import Demo, call, serving
from tests.guards.conftest import (
    Config,
    latest_event,
    open_tickets,
    project_copy,
    unrelated,
)

pytestmark = pytest.mark.anyio
LOOKUPS = ["get_customer_by_id", "list_customer_orders", "list_customer_tickets"]


def enforce(config: Config) -> None:
    support = config["roles"]["support"]
    support["requires_reason"]["mode"] = "enforce"
    support["purpose"]["mode"] = "enforce"


async def test_honest_work_passes_and_browsing_is_refused_from_the_first_record(
        demo: Demo, tmp_path: Path) -> None:
    alice = demo.token("alice")
    mine = open_tickets(demo, "alice@example.com")
    others = unrelated(demo, "alice@example.com", 5)
    assert len(mine) >= 3 and 42 in mine
    async with serving(project_copy(demo, tmp_path, enforce)) as client:
        for customer in mine:
            for function in LOOKUPS:
                response = await call(client, alice, function, {"customer_id": customer},
                                      reason="TICKET-1042")
                assert response.status_code == 200, (customer, function, response.text)
        assert "purpose" not in latest_event(demo, "alice@example.com")[2]  # nothing to note
        for customer in others:
            refused = await call(client, alice, "get_customer_by_id", {"customer_id": customer},
                                 reason="TICKET-1042")
            assert refused.status_code == 403
            body = refused.json()
            assert body["error"]["rule"] == "purpose (open_ticket)"
            assert "an open ticket for the customer must be assigned to you" in \
                body["error"]["message"]
            assert "rows" not in body
            decision, code, context = latest_event(demo, "alice@example.com")
            assert (decision, code, context["purpose"]) == ("denied", "policy_denied", "miss")


async def test_warn_mode_allows_records_and_asks_for_an_alert(demo: Demo, tmp_path: Path) -> None:
    [customer] = unrelated(demo, "alice@example.com", 1)
    async with serving(project_copy(demo, tmp_path, lambda c: None)) as client:
        response = await call(client, demo.token("alice"), "get_customer_by_id",
                              {"customer_id": customer}, reason="TICKET-1042")
    assert response.status_code == 200 and response.json()["rows"]
    decision, _, context = latest_event(demo, "alice@example.com")
    assert decision == "allowed"
    assert context | {"purpose_check": "open_ticket"} == context
    assert (context["purpose"], context["purpose_missed"], context["purpose_alert"]) == \
        ("miss", "1", "each")


@pytest.mark.parametrize(("reason", "finding"), [(None, "missing"), ("lunch", "mismatch"),
                                                  ("TICKET-1' OR '1'='1", "mismatch")])
async def test_a_reason_is_required_in_the_expected_form(demo: Demo, tmp_path: Path,
                                                         reason: str | None, finding: str) -> None:
    async with serving(project_copy(demo, tmp_path, enforce)) as client:
        response = await call(client, demo.token("alice"), "get_customer_by_id",
                              {"customer_id": 42}, reason=reason)
    assert response.status_code == 403
    assert response.json()["error"]["rule"] == "requires_reason (support)"
    assert "^TICKET-[0-9]+$" in response.json()["error"]["message"]
    decision, _, context = latest_event(demo, "alice@example.com")
    assert decision == "denied" and context["reason_check"] == finding


async def test_a_search_is_refused_when_it_returns_customers_outside_the_purpose(
        demo: Demo, tmp_path: Path) -> None:
    def searches_too(config: Config) -> None:
        enforce(config)
        config["roles"]["support"]["purpose"]["functions"].append("search_customers")

    async with serving(project_copy(demo, tmp_path, searches_too)) as client:
        broad = await call(client, demo.token("alice"), "search_customers",
                           {"email_prefix": "a"}, reason="TICKET-1042")
        narrow = await call(client, demo.token("alice"), "search_customers",
                            {"email_prefix": "canary"}, reason="TICKET-1042")
    assert broad.status_code == 403
    assert "customer records this call returned" in broad.json()["error"]["message"]
    assert narrow.status_code == 200 and narrow.json()["rows"][0][0] == 42


async def test_the_most_permissive_granting_role_wins(demo: Demo, tmp_path: Path) -> None:
    def compliance_is_free(config: Config) -> None:
        enforce(config)
        config["roles"]["compliance"].pop("requires_reason")

    [customer] = unrelated(demo, "carol@example.com", 1)
    async with serving(project_copy(demo, tmp_path, compliance_is_free)) as client:
        response = await call(client, demo.token("carol"), "get_customer_by_id",
                              {"customer_id": customer}, reason=None)
    assert response.status_code == 200
    assert "purpose" not in latest_event(demo, "carol@example.com")[2]


@pytest.mark.parametrize(("edit", "message"), [
    (lambda c: c["roles"]["support"]["purpose"].update(check="nope"), "not declared"),
    (lambda c: c["roles"]["support"]["requires_reason"].update(pattern="("),
     "not a regular expression"),
    (lambda c: c["purpose"]["open_ticket"].update(sql="SELECT :ssn"), "uses :ssn"),
    (lambda c: c["roles"]["support"]["purpose"].update(mode="sometimes"), "mode must be"),
    (lambda c: c["roles"]["support"]["purpose"].update(functions=["revenue_by_plan"]),
     "matches no function the role grants"),
])
def test_configuration_errors_are_clear(demo: Demo, tmp_path: Path,
                                        edit: Callable[[Config], None], message: str) -> None:
    project = load_project(project_copy(demo, tmp_path, edit))
    with pytest.raises(ProjectError, match=message):
        load_requirements(project)
