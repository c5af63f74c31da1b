"""Just-in-time elevation and break-glass, through the HTTP API, against the real database.

Alice holds ``support``; ``billing`` is approved by ``compliance`` (Carol);
``admin`` may be taken by break-glass for at most 15 minutes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx
import psycopg
import pytest

from querygate.api import create_app
from querygate.gateway import Gateway
from querygate.project import load_project
from tests.demo_env import call
from tests.identity.conftest import Sso

pytestmark = pytest.mark.anyio


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def ask(client: httpx.AsyncClient, token: str, **body: Any) -> httpx.Response:
    return await client.post("/v1/access/requests", json=body, headers=auth(token))


async def decide(client: httpx.AsyncClient, token: str, request_id: str, verb: str = "approve",
                 **body: Any) -> httpx.Response:
    return await client.post(f"/v1/access/requests/{request_id}/{verb}", json=body,
                             headers=auth(token))


async def events(sso: Sso, request_id: str) -> list[tuple[str, str, str, dict[str, str]]]:
    async with await psycopg.AsyncConnection.connect(sso.demo.gateway_url) as conn:
        rows = await (await conn.execute(
            "SELECT function_name, decision, coalesce(actor_email, actor_id), context "
            "FROM querygate.audit_events WHERE context->>'access_request' LIKE %s ORDER BY seq",
            (f"%{request_id}%",))).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


async def db_now(sso: Sso) -> dt.datetime:
    async with await psycopg.AsyncConnection.connect(sso.demo.gateway_url) as conn:
        row = await (await conn.execute("SELECT now()")).fetchone()
    assert row is not None
    return row[0]


async def test_request_approve_use_expire(sso: Sso, sso_client: httpx.AsyncClient) -> None:
    alice, bob, carol = (sso.demo.token(n) for n in ("alice", "bob", "carol"))
    before = await call(sso_client, alice, "list_customer_payments", {"customer_id": 42})
    assert before.status_code == 403
    asked = await ask(sso_client, alice, role="billing", duration="3s", reason="INC-4711 refund")
    assert asked.status_code == 201, asked.text
    request_id = asked.json()["request"]["id"]
    assert asked.json()["request"]["status"] == "pending"
    assert (await call(sso_client, alice, "list_customer_payments", {"customer_id": 42})).status_code == 403

    own = await decide(sso_client, alice, request_id)
    assert own.status_code == 403 and own.json()["error"]["rule"] == "access.self_approval"
    not_approver = await decide(sso_client, bob, request_id)
    assert not_approver.status_code == 403 and not_approver.json()["error"]["rule"] == "access.approver"
    approved = await decide(sso_client, carol, request_id, note="ok")
    assert approved.status_code == 200, approved.text
    grant = approved.json()["request"]
    assert grant["status"] == "approved" and grant["decided_by"] == "carol@example.com"

    second = await Gateway.open(load_project(sso.project_dir))  # another gateway agrees
    try:
        transport = httpx.ASGITransport(app=create_app(second, lifespan_close=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://b.test") as b:
            used = await call(b, alice, "list_customer_payments", {"customer_id": 42})
        assert used.status_code == 200, used.text
        expires = dt.datetime.fromisoformat(grant["expires_at"])
        await asyncio.sleep(max(0.0, (expires - await db_now(sso)).total_seconds()) + 1.0)
        async with httpx.AsyncClient(transport=transport, base_url="http://b.test") as b:
            late = await call(b, alice, "list_customer_payments", {"customer_id": 42})
    finally:
        await second.close()
    assert late.status_code == 403  # one second after expiry: refused
    steps = await events(sso, request_id)
    assert [(s[0], s[1], s[2]) for s in steps] == [
        ("querygate.access.request", "allowed", "alice@example.com"),
        ("querygate.access.approve", "denied", "alice@example.com"),
        ("querygate.access.approve", "denied", "bob@example.com"),
        ("querygate.access.approve", "allowed", "carol@example.com"),
        ("list_customer_payments", "allowed", "alice@example.com"),
    ]
    assert steps[-1][3] == {"access_request": request_id, "client": "http"}


async def test_refusals_are_audited_and_deny_cancel_work(sso: Sso, sso_client: httpx.AsyncClient) -> None:
    alice, carol = sso.demo.token("alice"), sso.demo.token("carol")
    for body, code in [({"role": "billing", "duration": "9h", "reason": "x"}, 422),
                       ({"role": "billing", "duration": "1h", "reason": " "}, 422),
                       ({"role": "support", "duration": "1h", "reason": "x"}, 403),
                       ({"role": "nope", "duration": "1h", "reason": "x"}, 422),
                       ({"role": "billing", "duration": "soon", "reason": "x"}, 422)]:
        assert (await ask(sso_client, alice, **body)).status_code == code, body
    request_id = (await ask(sso_client, alice, role="billing", duration="1h",
                            reason="INC-1")).json()["request"]["id"]
    denied = await decide(sso_client, carol, request_id, "deny", note="use the runbook")
    assert denied.json()["request"]["status"] == "denied"
    assert (await decide(sso_client, carol, request_id)).status_code == 409
    other = (await ask(sso_client, alice, role="billing", duration="1h", reason="INC-2")).json()
    listed = await sso_client.get("/v1/access/requests", headers=auth(carol))
    assert other["request"]["id"] in [r["id"] for r in listed.json()["requests"]]
    cancelled = await sso_client.post(f"/v1/access/requests/{other['request']['id']}/cancel",
                                      headers=auth(alice))
    assert cancelled.json()["request"]["status"] == "cancelled"
    async with await psycopg.AsyncConnection.connect(sso.demo.gateway_url) as conn:
        refused = await (await conn.execute(
            "SELECT count(*) FROM querygate.audit_events WHERE function_name LIKE 'querygate.access.%%' "
            "AND decision = 'denied' AND actor_email = 'alice@example.com'")).fetchone()
    assert refused is not None and refused[0] >= 5


async def test_an_approval_bound_to_a_function_and_a_value(sso: Sso, sso_client: httpx.AsyncClient) -> None:
    alice, carol = sso.demo.token("alice"), sso.demo.token("carol")
    asked = await ask(sso_client, alice, role="billing", duration="10m", reason="INC-42",
                      functions=["get_customer_by_id", "list_customer_payments"])
    request_id = asked.json()["request"]["id"]
    approved = await decide(sso_client, carol, request_id, functions=["get_customer_by_id"],
                            params={"customer_id": "42"})  # the approver narrows it further
    assert approved.json()["request"]["params"] == {"customer_id": "42"}
    inside = await call(sso_client, alice, "get_customer_by_id", {"customer_id": 42})
    assert inside.status_code == 200 and "iban" not in inside.json()["fields"]  # billing: clear
    outside = await call(sso_client, alice, "get_customer_by_id", {"customer_id": 43})
    assert outside.status_code == 200  # outside the approval: only support's own grants apply
    assert outside.json()["fields"]["iban"] == "mask.last4"
    other = await call(sso_client, alice, "list_customer_payments", {"customer_id": 42})
    assert other.status_code == 403
    plain = await call(sso_client, alice, "list_customer_orders", {"customer_id": 43})
    assert plain.status_code == 200  # support's own grants are untouched
    await sso_client.post(f"/v1/access/requests/{request_id}/cancel", headers=auth(alice))
    after = await call(sso_client, alice, "get_customer_by_id", {"customer_id": 42})
    assert after.json()["fields"]["iban"] == "mask.last4"


async def test_break_glass(sso: Sso, sso_client: httpx.AsyncClient) -> None:
    alice = sso.demo.token("alice")
    glass = "/v1/access/break-glass"
    assert (await sso_client.post(glass, json={"role": "admin"}, headers=auth(alice))).status_code == 422
    too_long = await sso_client.post(glass, json={"role": "admin", "reason": "INC-9", "duration": "1h"},
                                     headers=auth(alice))
    assert too_long.status_code == 422
    undeclared = await sso_client.post(glass, json={"role": "billing", "reason": "INC-9"},
                                       headers=auth(alice))
    assert undeclared.status_code == 403
    taken = await sso_client.post(glass, json={"role": "admin", "reason": "INC-9 payments down"},
                                  headers=auth(alice))
    assert taken.status_code == 201, taken.text
    grant = taken.json()["request"]
    assert grant["break_glass"] is True and grant["duration_s"] == 900
    assert grant["decided_by"] == "alice@example.com"
    used = await call(sso_client, alice, "get_customer_by_id", {"customer_id": 42})
    assert used.status_code == 200 and used.json()["fields"] == {}  # admin: everything in clear
    steps = await events(sso, grant["id"])
    assert steps[0][0] == "querygate.access.break_glass" and steps[0][3]["break_glass"] == "true"
    assert steps[-1][0] == "get_customer_by_id"
    assert steps[-1][3] == {"access_request": grant["id"], "break_glass": "true", "client": "http"}
    await sso_client.post(f"/v1/access/requests/{grant['id']}/cancel", headers=auth(alice))


async def test_an_agent_acts_for_a_person_with_no_more_than_their_roles(
        sso: Sso, sso_client: httpx.AsyncClient) -> None:
    from querygate import identity

    async with await psycopg.AsyncConnection.connect(sso.demo.gateway_url, autocommit=True) as conn:
        await identity.add_user(conn, "triage-bot@agents.example.com", ["support", "billing"],
                                kind="service")
        token, _ = await identity.issue_token(conn, "triage-bot@agents.example.com",
                                              on_behalf_of="alice@example.com")
        with pytest.raises(identity.IdentityError):
            await identity.issue_token(conn, "alice@example.com", on_behalf_of="bob@example.com")
    response = await call(sso_client, token, "get_customer_by_id", {"customer_id": 42})
    assert response.json()["fields"]["iban"] == "mask.last4"  # billing ∩ alice's roles = no
    assert (await call(sso_client, token, "list_customer_payments", {"customer_id": 42})).status_code == 403
    denied = await sso_client.post("/v1/access/break-glass", json={"role": "admin", "reason": "x"},
                                   headers=auth(token))
    assert denied.status_code == 403 and denied.json()["error"]["rule"] == "access.people_only"
    async with await psycopg.AsyncConnection.connect(sso.demo.gateway_url) as conn:
        row = await (await conn.execute(
            "SELECT actor_email, actor_roles, context FROM querygate.audit_events "
            "WHERE event_id = %s", (response.json()["audit_id"],))).fetchone()
        alice_id = await (await conn.execute(
            "SELECT id FROM querygate.users WHERE email = 'alice@example.com'")).fetchone()
    assert row is not None and alice_id is not None
    assert row[0] == "triage-bot@agents.example.com" and row[1] == ["support"]
    assert row[2] == {"on_behalf_of": alice_id[0], "on_behalf_of_email": "alice@example.com",
                      "client": "http"}
