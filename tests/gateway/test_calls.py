"""End to end through the HTTP API: identity, policy, masking and audit on a real database."""

from __future__ import annotations

import asyncio

import httpx
import psycopg
import pytest

from querygate import audit
from querygate.demo import CANARIES
from tests.demo_env import Demo, call

pytestmark = pytest.mark.anyio


async def events_for(demo: Demo, subject: tuple[str, str]) -> list[audit.StoredEvent]:
    async with await psycopg.AsyncConnection.connect(demo.gateway_url, autocommit=True) as conn:
        return await audit.search(conn, audit.Query(subject=subject))


async def test_alice_sees_iban_last4_and_no_ssn(client: httpx.AsyncClient, demo: Demo) -> None:
    response = await call(client, demo.token("alice"), "get_customer_by_id", {"customer_id": 42})
    assert response.status_code == 200, response.text
    body = response.json()
    row = dict(zip(body["columns"], body["rows"][0], strict=True))
    assert row["iban"] == "****" + CANARIES["iban"][-4:]
    assert "ssn" not in row
    assert row["email"] == CANARIES["email"]
    assert row["date_of_birth"] == int(CANARIES["date_of_birth"][:4])
    assert body["fields"] == {"iban": "mask.last4", "ssn": "omit", "date_of_birth": "mask.year"}
    assert CANARIES["ssn"] not in response.text and CANARIES["iban"] not in response.text
    assert body["audit_id"] and body["receipt"]["seq"] >= 1


async def test_bob_sees_iban_in_clear_and_both_calls_are_audited_with_subjects(
        client: httpx.AsyncClient, demo: Demo) -> None:
    alice = await call(client, demo.token("alice"), "get_customer_by_id", {"customer_id": 42})
    bob = await call(client, demo.token("bob"), "get_customer_by_id", {"customer_id": 42},
                     reason="BILL-7")
    assert bob.status_code == 200
    row = dict(zip(bob.json()["columns"], bob.json()["rows"][0], strict=True))
    assert row["iban"] == CANARIES["iban"]
    assert row["email"] == "****"
    events = {e.event.event_id.hex: e for e in await events_for(demo, ("customer", "42"))}
    seen_alice = events[alice.json()["audit_id"].replace("-", "")].event
    seen_bob = events[bob.json()["audit_id"].replace("-", "")].event
    assert seen_alice.actor_email == "alice@example.com"
    assert seen_alice.fields["iban"] == "mask.last4" and seen_alice.fields["email"] == "allow"
    assert seen_bob.actor_email == "bob@example.com" and seen_bob.reason == "BILL-7"
    assert seen_bob.fields["iban"] == "allow"
    assert ("customer", "42") in seen_bob.subjects
    assert seen_bob.parameters == {"customer_id": 42}


async def test_subjects_come_from_result_rows(client: httpx.AsyncClient, demo: Demo) -> None:
    response = await call(client, demo.token("alice"), "search_customers",
                          {"email_prefix": "canary"})
    assert response.status_code == 200
    event = (await events_for(demo, ("customer", "42")))[0].event
    assert event.function_name == "search_customers"
    assert event.rows_returned == len(response.json()["rows"]) >= 1
    assert str(event.parameters["email_prefix"]).startswith("hmac:")


async def test_revoked_user_is_refused_on_the_very_next_call(client: httpx.AsyncClient,
                                                             demo: Demo) -> None:
    token = demo.token("dave")
    assert (await call(client, token, "revenue_by_plan", {"since": "2024-01-01"})).status_code == 200
    with psycopg.connect(demo.gateway_url, autocommit=True) as conn:
        conn.execute("UPDATE querygate.users SET status = 'offboarded' "
                     "WHERE email = 'dave@example.com'")
    try:
        response = await call(client, token, "revenue_by_plan", {"since": "2024-01-01"})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"
    finally:
        with psycopg.connect(demo.gateway_url, autocommit=True) as conn:
            conn.execute("UPDATE querygate.users SET status = 'active' "
                         "WHERE email = 'dave@example.com'")


@pytest.mark.parametrize(("user", "function", "params", "status", "code"), [
    ("alice", "revenue_by_plan", {"since": "2024-01-01"}, 403, "policy_denied"),
    ("bob", "search_customers", {"email_prefix": "a"}, 403, "policy_denied"),
    ("alice", "no_such_function", {}, 404, "not_found"),
    ("alice", "get_customer_by_id", {"customer_id": "1 OR 1=1"}, 422, "bad_parameters"),
    ("alice", "get_customer_by_id", {}, 422, "bad_parameters"),
    ("alice", "get_customer_by_id", {"customer_id": 1, "extra": 1}, 422, "bad_parameters"),
])
async def test_refusals_are_audited(client: httpx.AsyncClient, demo: Demo, user: str,
                                    function: str, params: dict[str, object], status: int,
                                    code: str) -> None:
    response = await call(client, demo.token(user), function, params)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    async with await psycopg.AsyncConnection.connect(demo.gateway_url, autocommit=True) as conn:
        latest = (await audit.search(conn, audit.Query(user=f"{user}@example.com", limit=1)))[0]
    assert latest.event.function_name == function
    assert latest.event.decision == ("denied" if status in (403, 404) else "error")
    assert latest.event.error_code == code
    assert latest.event.rows_returned == 0


async def test_policy_denial_names_the_rule(client: httpx.AsyncClient, demo: Demo) -> None:
    body = (await call(client, demo.token("bob"), "search_customers",
                       {"email_prefix": "a"})).json()
    assert "pii.contact" in body["error"]["rule"]
    assert "public.customers.email" in body["error"]["message"]


async def test_unknown_token_is_401_and_audited_without_an_actor(client: httpx.AsyncClient,
                                                                 demo: Demo) -> None:
    with psycopg.connect(demo.admin_url) as conn:
        before = conn.execute("SELECT count(*) FROM querygate.audit_events WHERE actor_id IS "
                              "NULL AND error_code = 'not_authenticated'").fetchone()
    for header in ({}, {"Authorization": "Bearer qg_" + "x" * 43}, {"Authorization": "Basic x"}):
        response = await client.post("/v1/call/get_customer_by_id",
                                     json={"params": {"customer_id": 1}}, headers=header)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    with psycopg.connect(demo.admin_url) as conn:
        after = conn.execute("SELECT count(*) FROM querygate.audit_events WHERE actor_id IS "
                             "NULL AND error_code = 'not_authenticated'").fetchone()
    assert before is not None and after == (before[0] + 3,)


async def test_functions_lists_only_what_the_caller_may_call(client: httpx.AsyncClient,
                                                             demo: Demo) -> None:
    alice = (await client.get("/v1/functions",
                              headers={"Authorization": f"Bearer {demo.token('alice')}"})).json()
    names = {f["name"] for f in alice["functions"]}
    assert "get_customer_by_id" in names and "revenue_by_plan" not in names
    bob = (await client.get("/v1/functions",
                            headers={"Authorization": f"Bearer {demo.token('bob')}"})).json()
    assert "revenue_by_plan" in {f["name"] for f in bob["functions"]}
    assert "search_customers" not in {f["name"] for f in bob["functions"]}


async def test_openapi_has_one_typed_operation_per_function(client: httpx.AsyncClient,
                                                           gateway: object) -> None:
    doc = (await client.get("/openapi.json")).json()
    operations = {p: v["post"] for p, v in doc["paths"].items() if "post" in v}
    assert len(operations) == len(gateway.functions)  # type: ignore[attr-defined]
    schema = operations["/v1/call/get_customer_by_id"]["requestBody"]["content"][
        "application/json"]["schema"]["properties"]["params"]
    assert schema["properties"]["customer_id"]["type"] == "integer"
    assert schema["required"] == ["customer_id"] and schema["additionalProperties"] is False


async def test_healthz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_concurrent_callers_each_get_their_own_masks_and_audit(
        client: httpx.AsyncClient, demo: Demo) -> None:
    """Calls in flight together share token look-ups (one statement per batch); each still
    gets its own identity, masks and audit event, and a bad token among them only its 401."""
    callers = ["alice", "bob", "carol", "alice", "bob", "carol"] * 4

    async def one(who: str) -> httpx.Response:
        return await call(client, demo.token(who), "get_customer_by_id", {"customer_id": 42})

    responses = await asyncio.gather(*(one(who) for who in callers),
                                     call(client, "qg_" + "z" * 43, "get_customer_by_id",
                                          {"customer_id": 42}))
    *answered, stranger = responses
    assert stranger.status_code == 401
    ibans = {"alice": "****" + CANARIES["iban"][-4:], "bob": CANARIES["iban"],
             "carol": "****" + CANARIES["iban"][-4:]}
    events = {e.event.event_id.hex: e.event for e in await events_for(demo, ("customer", "42"))}
    for who, response in zip(callers, answered, strict=True):
        assert response.status_code == 200, response.text
        row = dict(zip(response.json()["columns"], response.json()["rows"][0], strict=True))
        assert row["iban"] == ibans[who], who
        recorded = events[response.json()["audit_id"].replace("-", "")]
        assert recorded.actor_email == f"{who}@example.com"
