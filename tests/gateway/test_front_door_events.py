"""Every call's event names its front door, and refusals of unknown tokens are audited too."""

from __future__ import annotations

import json
from typing import Any

import httpx
import psycopg
import pytest

from querygate.gateway import RefusalBudget
from querygate.guards import CallContext, note
from querygate.identity import Identity
from tests.demo_env import Demo, call

pytestmark = pytest.mark.anyio


def _events(demo: Demo, where: str, *args: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(demo.admin_url) as conn:
        return conn.execute(
            "SELECT decision, actor_id, function_name, error_code, context::text "
            f"FROM querygate.audit_events WHERE {where} ORDER BY seq", args).fetchall()


async def test_the_event_names_the_front_door(client: httpx.AsyncClient, demo: Demo) -> None:
    plain = await call(client, demo.token("alice"), "get_customer_by_id", {"customer_id": 42})
    cli = await client.post("/v1/call/get_customer_by_id",
                            json={"params": {"customer_id": 42}, "reason": "T-1"},
                            headers={"Authorization": f"Bearer {demo.token('alice')}",
                                     "X-Querygate-Client": "cli"})
    forged = await client.post("/v1/call/get_customer_by_id",
                               json={"params": {"customer_id": 42}, "reason": "T-1"},
                               headers={"Authorization": f"Bearer {demo.token('alice')}",
                                        "X-Querygate-Client": "postgres"})
    kinds = []
    for response in (plain, cli, forged):
        assert response.status_code == 200, response.text
        (row,) = _events(demo, "event_id = %s", response.json()["audit_id"])
        kinds.append(json.loads(row[4])["client"])
    # the header names querygate's command line (a label any HTTP caller could send, so it
    # is only ever "cli" or "http"); any other value is ignored
    assert kinds == ["http", "cli", "http"]


async def test_an_unknown_token_is_refused_and_audited_without_an_actor(
        client: httpx.AsyncClient, demo: Demo) -> None:
    response = await call(client, "qg_not-a-real-token", "get_customer_by_id",
                          {"customer_id": 42})
    assert response.status_code == 401
    rows = _events(demo, "function_name = 'get_customer_by_id' AND error_code = "
                         "'not_authenticated'")
    assert rows, "the refusal left no audit event"
    decision, actor, _, _, context = rows[-1]
    assert decision == "denied" and actor is None
    assert "qg_not-a-real-token" not in context and json.loads(context)["client"] == "http"


async def test_a_flood_of_bad_tokens_is_bounded_and_counted(client: httpx.AsyncClient,
                                                           demo: Demo) -> None:
    before = len(_events(demo, "error_code = 'not_authenticated'"))
    for i in range(260):
        response = await call(client, f"qg_flood-{i}", "flood_probe")
        assert response.status_code == 401
    recorded = _events(demo, "error_code = 'not_authenticated'")[before:]
    assert 0 < len(recorded) < 260  # bounded: the burst, plus what the rate refilled
    assert all(r[2] == "flood_probe" for r in recorded)


def test_the_budget_counts_what_it_passes_over() -> None:
    budget = RefusalBudget(rate=0.0001, burst=2)
    assert [budget.take(), budget.take(), budget.take(), budget.take()] == [0, 0, None, None]
    budget._tokens = 1  # the rate refilled one
    assert budget.take() == 2  # the next recorded refusal carries the two skipped


def test_a_guard_note_belongs_to_the_call_not_the_shared_identity() -> None:
    who = Identity("usr_1", "a@example.com", "user", ("support",), "tok_1", context={})
    first = CallContext(who, None, None, {}, None, None)  # type: ignore[arg-type]
    second = CallContext(who, None, None, {}, None, None)  # type: ignore[arg-type]
    note(first, "purpose", "miss")
    assert first.notes == {"purpose": "miss"}
    assert second.notes == {} and dict(who.context) == {}
