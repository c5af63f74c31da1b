"""``querygate users offboard``: one step revokes everything, cancels running work, reports access."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import psycopg
from click.testing import CliRunner

from querygate import identity
from querygate.api import create_app
from querygate.cli import main
from querygate.gateway import Gateway
from querygate.project import load_project
from tests.demo_env import call
from tests.identity.conftest import Sso

EMAIL = "erin@example.com"


async def _prepare(sso: Sso) -> tuple[str, str, str, str]:
    """Erin: a token, a JWT sign-in, a pending request, three calls in the audit log."""
    async with await psycopg.AsyncConnection.connect(sso.demo.gateway_url, autocommit=True) as conn:
        user = await identity.add_user(conn, EMAIL, ["support"])
        token, _ = await identity.issue_token(conn, EMAIL)
    jwt_token = sso.idp.sign(sso.idp.claims(sub="erin-sub"))
    gateway = await Gateway.open(load_project(sso.project_dir))
    try:
        transport = httpx.ASGITransport(app=create_app(gateway, lifespan_close=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://a.test") as client:
            for customer in (42, 43):
                assert (await call(client, token, "get_customer_by_id",
                                   {"customer_id": customer})).status_code == 200
            assert (await call(client, jwt_token, "list_customer_orders",
                               {"customer_id": 42})).status_code == 200
            asked = await client.post("/v1/access/requests", headers={
                "Authorization": f"Bearer {token}"}, json={"role": "billing", "duration": "1h",
                                                           "reason": "INC-7"})
            assert asked.status_code == 201
    finally:
        await gateway.close()
    return user.id, token, jwt_token, asked.json()["request"]["id"]


async def _refused(sso: Sso, *tokens: str) -> list[int]:
    gateway = await Gateway.open(load_project(sso.project_dir))
    try:
        transport = httpx.ASGITransport(app=create_app(gateway, lifespan_close=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://b.test") as client:
            return [(await call(client, t, "get_customer_by_id", {"customer_id": 42})).status_code
                    for t in tokens]
    finally:
        await gateway.close()


def _running_query(sso: Sso, label: str, outcome: list[str]) -> threading.Thread:
    """A backend labelled as the gateway labels a call of this person, busy for 30 s."""

    def work() -> None:
        with psycopg.connect(sso.demo.gateway_url) as conn:
            try:
                conn.execute(f"/* {label} */ SELECT pg_sleep(30)".encode())
                outcome.append("finished")
            except psycopg.errors.QueryCanceled:
                outcome.append("cancelled")

    thread = threading.Thread(target=work)
    thread.start()
    with psycopg.connect(sso.demo.admin_url, autocommit=True) as conn:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not conn.execute(
                "SELECT 1 FROM pg_stat_activity WHERE starts_with(query, %s) AND state = 'active'",
                (f"/* {label} */",)).fetchone():
            time.sleep(0.05)  # waiting for another session to start its statement
    return thread


def test_offboard_revokes_everything_and_reports(sso: Sso) -> None:
    user_id, token, jwt_token, request_id = asyncio.run(_prepare(sso))
    outcome: list[str] = []
    thread = _running_query(sso, f"querygate:{user_id}", outcome)
    result = CliRunner().invoke(main, ["users", "offboard", EMAIL, "--by", "dave@example.com",
                                       "--project", str(sso.project_dir)])
    thread.join(timeout=15)
    assert result.exit_code == 0, result.output
    assert outcome == ["cancelled"]
    lines = result.output.splitlines()
    assert lines[0] == f"offboarded {EMAIL} ({user_id}) by dave@example.com"
    assert lines[1] == ("  1 API token(s) revoked, sign-in sessions ended, 1 access request(s) "
                        "and grant(s) revoked, 1 running query(ies) cancelled")
    assert lines[2] == "access in the last 14 days (audit log): 3 call(s), 2 data subject(s)"
    rows = {line.split()[0]: line.split() for line in lines[4:]}
    assert rows["get_customer_by_id"][1:4] == ["2", "2", "2"]
    assert "iban=mask.last4" in lines[4] and "ssn=omit" in lines[4]
    assert rows["list_customer_orders"][1:4] == ["1", "1", "1"]
    assert asyncio.run(_refused(sso, token, jwt_token)) == [401, 401]
    with psycopg.connect(sso.demo.gateway_url) as conn:
        status = conn.execute("SELECT status, status_changed_by FROM querygate.users WHERE id = %s",
                              (user_id,)).fetchone()
        grant = conn.execute("SELECT status, revoked_by FROM querygate.access_requests "
                             "WHERE id = %s", (request_id,)).fetchone()
        event = conn.execute("SELECT actor_id, context FROM querygate.audit_events "
                             "WHERE function_name = 'querygate.offboard' AND context->>'user' = %s",
                             (user_id,)).fetchone()
    assert status == ("offboarded", "dave@example.com")
    assert grant == ("revoked", "dave@example.com")
    assert event is not None and event[0] == "dave@example.com"
    assert event[1]["queries_cancelled"] == "1" and event[1]["tokens_revoked"] == "1"


def test_offboard_json_and_unknown_person(sso: Sso) -> None:
    runner = CliRunner()
    unknown = runner.invoke(main, ["users", "offboard", "nobody@example.com", "--project",
                                   str(sso.project_dir)])
    assert unknown.exit_code == 1 and "no user nobody@example.com" in unknown.output
    again = runner.invoke(main, ["users", "offboard", EMAIL, "--json", "--project",
                                 str(sso.project_dir)])
    assert again.exit_code == 0, again.output
    report = json.loads(again.output)
    assert report["status"] == "offboarded" and report["tokens_revoked"] == 0
    assert report["access"]["functions"]["get_customer_by_id"]["calls"] == 2
