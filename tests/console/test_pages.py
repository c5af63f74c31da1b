"""The console in-process: sign-in, headers, CSRF, roles, masking, escaping, audit, revocation."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest
from markupsafe import escape

from querygate.demo import CANARIES
from tests.console.conftest import csrf_of, sign_in
from tests.demo_env import Demo

pytestmark = pytest.mark.anyio


def events(demo: Demo, where: str = "true", args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(demo.admin_url) as conn:
        return conn.execute(
            "SELECT seq, function_name, decision, actor_email, context->>'client', reason "
            f"FROM querygate.audit_events WHERE {where} ORDER BY seq", args).fetchall()


async def test_root_and_console_lead_to_the_sign_in_form(app_client: httpx.AsyncClient) -> None:
    root = await app_client.get("/")
    assert root.status_code == 303 and root.headers["location"] == "/console/"
    home = await app_client.get("/console/")
    assert home.status_code == 303 and home.headers["location"] == "/console/login"
    page = await app_client.get("/console/login")
    assert page.status_code == 200
    assert '<label for="token">' in page.text and 'id="token" name="token"' in page.text
    assert 'type="password"' in page.text and "<script>" not in page.text


async def test_security_headers_on_pages_files_and_redirects(app_client: httpx.AsyncClient) -> None:
    for path in ("/console/login", "/console/static/console.css", "/console/functions"):
        response = await app_client.get(path)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, path
        assert "frame-ancestors 'none'" in csp and response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"
    assert (await app_client.get("/console/login")).headers["cache-control"] == "no-store"
    missing = await app_client.get("/console/no-such-page")
    assert missing.status_code == 404 and "no such page" in missing.text
    assert missing.headers["x-frame-options"] == "DENY"


async def test_sign_in_sets_an_httponly_samesite_cookie_and_is_audited(
        app_client: httpx.AsyncClient, demo: Demo) -> None:
    response = await sign_in(app_client, demo.token("alice"))
    assert response.status_code == 303 and response.headers["location"] == "/console/functions"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("qg_console=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert demo.token("alice") not in cookie and demo.token("alice") not in str(response.headers)
    page = await app_client.get("/console/functions")
    assert page.status_code == 200 and "alice@example.com" in page.text
    assert demo.token("alice") not in page.text
    last = events(demo, "function_name = 'querygate.console.signin'")[-1]
    assert last[3:5] == ("alice@example.com", "console")


async def test_a_wrong_token_is_refused_in_plain_words(app_client: httpx.AsyncClient) -> None:
    response = await sign_in(app_client, "qg_not-a-real-token-at-all-000000000000")
    assert response.status_code == 401
    assert "unknown, expired or revoked" in response.text and "qg_console=" not in str(
        response.headers.get("set-cookie"))


async def test_sign_in_needs_the_forms_csrf_token(app_client: httpx.AsyncClient,
                                                  demo: Demo) -> None:
    await app_client.get("/console/login")
    forged = await app_client.post("/console/login", data={"token": demo.token("alice")})
    assert forged.status_code == 403 and "qg_console=" not in str(forged.headers.get("set-cookie"))


async def test_pages_need_a_session(app_client: httpx.AsyncClient) -> None:
    for path in ("/console/functions", "/console/audit?subject=customer:42", "/console/users"):
        response = await app_client.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith(
            "/console/login"), path


async def test_functions_list_what_the_viewer_may_call(as_user, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    alice = await as_user(demo.token("alice"))
    page = (await alice.get("/console/functions")).text
    assert "get_customer_by_id" in page and "search_customers" in page
    assert "list_payments" not in page  # billing's, not support's
    assert "/console/audit" not in page and "/console/users" not in page  # not hers: no links
    form = (await alice.get("/console/functions/get_customer_by_id")).text
    assert 'type="number"' in form and '<label for="p-customer_id">' in form
    assert '<label for="reason">' in form
    refused = await alice.get("/console/functions/list_payments")
    assert refused.status_code == 404


async def test_a_masked_call_marks_each_masked_cell_and_names_omitted_columns(
        as_user, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    alice = await as_user(demo.token("alice"))
    page = await alice.get("/console/functions/get_customer_by_id")
    response = await alice.post("/console/functions/get_customer_by_id", data={
        "csrf": csrf_of(page.text), "p.customer_id": "42", "reason": "TICKET-1042"})
    assert response.status_code == 200, response.text
    text = response.text
    assert 'data-rule="mask.last4"' in text and "masked: mask.last4" in text
    assert "****4242" in text
    assert "Not returned (omitted by policy): <code>ssn</code>" in text
    for name in ("iban", "ssn", "date_of_birth"):
        assert CANARIES[name] not in text, name
    flat = " ".join(text.split())
    assert "<strong>1</strong> row." in flat
    last = events(demo, "function_name = 'get_customer_by_id'")[-1]
    assert last[2:] == ("allowed", "alice@example.com", "console", "TICKET-1042")
    assert f"seq {last[0]}," in flat  # the receipt: her event's place in the log


async def test_csv_download_is_a_call_of_its_own(as_user, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    alice = await as_user(demo.token("alice"))
    page = await alice.get("/console/functions/get_customer_by_id")
    before = len(events(demo, "function_name = 'get_customer_by_id'"))
    response = await alice.post("/console/functions/get_customer_by_id/csv", data={
        "csrf": csrf_of(page.text), "p.customer_id": "42", "reason": "TICKET-7"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    lines = response.text.splitlines()
    assert "iban (mask.last4)" in lines[0] and "ssn" not in lines[0]
    assert "****4242" in lines[1] and CANARIES["iban"] not in response.text
    assert len(events(demo, "function_name = 'get_customer_by_id'")) == before + 1


async def test_bad_parameters_are_explained_on_the_form(as_user, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    alice = await as_user(demo.token("alice"))
    page = await alice.get("/console/functions/get_customer_by_id")
    response = await alice.post("/console/functions/get_customer_by_id", data={
        "csrf": csrf_of(page.text), "p.customer_id": "forty-two", "reason": "TICKET-1"})
    assert response.status_code == 422
    assert "Check the form:" in response.text and "customer_id" in response.text
    assert 'role="alert"' in response.text


async def test_a_state_change_without_the_csrf_token_is_refused(as_user, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    alice = await as_user(demo.token("alice"))
    before = events(demo)
    missing = await alice.post("/console/functions/get_customer_by_id",
                               data={"p.customer_id": "42", "reason": "TICKET-1"})
    wrong = await alice.post("/console/functions/get_customer_by_id",
                             data={"csrf": "x" * 43, "p.customer_id": "42"})
    page = await alice.get("/console/functions/get_customer_by_id")
    other_site = await alice.post("/console/functions/get_customer_by_id",
                                  data={"csrf": csrf_of(page.text), "p.customer_id": "42"},
                                  headers={"origin": "https://evil.example"})
    for response in (missing, wrong, other_site):
        assert response.status_code == 403 and "security token" in response.text
        assert "Ada Canary" not in response.text
    assert [e for e in events(demo) if e not in before and e[1] == "get_customer_by_id"] == []
    refused = [e for e in events(demo) if e not in before and e[1] == "querygate.console.csrf"]
    assert [e[2:5] for e in refused] == [("denied", "alice@example.com", "console")] * 3


async def test_a_customer_named_like_a_script_renders_as_text(as_user, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    with psycopg.connect(demo.admin_url) as conn:
        conn.execute("UPDATE customers SET full_name = %s WHERE id = 7", (hostile,))
    dave = await as_user(demo.token("dave"))
    page = await dave.get("/console/functions/get_customer_by_id")
    response = await dave.post("/console/functions/get_customer_by_id", data={
        "csrf": csrf_of(page.text), "p.customer_id": "7", "reason": hostile})
    assert response.status_code == 200
    assert hostile not in response.text and "<img src=x" not in response.text
    assert str(escape(hostile)) in response.text
    audit_page = await dave.get("/console/audit", params={"subject": "customer:7"})
    assert hostile not in audit_page.text and str(escape(hostile)) in audit_page.text


async def test_audit_pages_are_for_audit_readers(as_user, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    alice = await as_user(demo.token("alice"))
    for path in ("/console/audit?subject=customer:42", "/console/audit/integrity",
                 "/console/reports", "/console/users", "/console/alerts", "/console/plan"):
        response = await alice.get(path)
        assert response.status_code == 403, path
        assert "Not allowed" in response.text
    refusal = events(demo, "function_name = 'querygate.console.page'")[-1]
    assert refusal[2:5] == ("denied", "alice@example.com", "console")
    carol = await as_user(demo.token("carol"))
    assert (await carol.get("/console/users")).status_code == 403  # compliance is no admin
    assert (await carol.get("/console/audit/integrity")).status_code == 200


async def test_who_accessed_customer_42_on_one_page(as_user, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    alice = await as_user(demo.token("alice"))
    page = await alice.get("/console/functions/get_customer_by_id")
    await alice.post("/console/functions/get_customer_by_id", data={
        "csrf": csrf_of(page.text), "p.customer_id": "42", "reason": "TICKET-4242"})
    carol = await as_user(demo.token("carol"))
    response = await carol.get("/console/audit", params={"subject": "customer:42",
                                                          "from": "2020-01-01"})
    assert response.status_code == 200
    text = response.text
    assert "Who accessed customer:42" in text and "TICKET-4242" in text
    assert "alice@example.com" in text and "iban=mask.last4" in text and "ssn=omit" in text
    assert "<time datetime=" in text and "UTC" in text
    assert CANARIES["iban"] not in text
    seq = events(demo, "reason = 'TICKET-4242'")[-1][0]
    assert f'href="/console/audit/events/{seq}"' in text
    read = events(demo, "function_name = 'querygate.audit.subject'")[-1]
    assert read[3:5] == ("carol@example.com", "console")
    detail = await carol.get(f"/console/audit/events/{seq}")
    assert detail.status_code == 200 and "Intact" in detail.text and "Previous hash" in detail.text
    user_page = await carol.get("/console/audit", params={"user": "alice@example.com"})
    assert "Last 14 days of alice@example.com" in user_page.text
    assert "get_customer_by_id" in user_page.text
    empty = await carol.get("/console/audit", params={"subject": "customer:999999"})
    assert "Nobody accessed customer:999999" in empty.text


async def test_integrity_verify_and_reports(as_user, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    carol = await as_user(demo.token("carol"))
    page = await carol.get("/console/audit/integrity")
    assert "Not verified from this console" in page.text
    verified = await carol.post("/console/audit/integrity", data={"csrf": csrf_of(page.text)})
    assert verified.status_code == 200 and "Verified: no event was altered" in verified.text
    report = await carol.get("/console/reports/subject-access",
                             params={"subject": "customer:42", "format": "csv"})
    assert report.status_code == 200 and "attachment" in report.headers["content-disposition"]
    assert "verified" in report.text
    missing = await carol.get("/console/reports/offboarding", params={"format": "json"})
    assert missing.status_code == 422 and "email" in missing.text
    kinds = [e[1] for e in events(demo, "actor_email = 'carol@example.com'")]
    assert "querygate.audit.verify" in kinds and "querygate.audit.report.subject-access" in kinds


async def test_adhoc_sql_for_adhoc_roles_only(as_user, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    alice = await as_user(demo.token("alice"))
    assert (await alice.get("/console/sql")).status_code == 403
    carol = await as_user(demo.token("carol"))
    page = await carol.get("/console/sql")
    response = await carol.post("/console/sql", data={
        "csrf": csrf_of(page.text), "sql": "SELECT id, iban FROM customers WHERE id = 42",
        "reason": "AUDIT-1"})
    assert response.status_code == 200, response.text
    assert 'data-rule="mask.last4"' in response.text and CANARIES["iban"] not in response.text
    assert events(demo, "function_name = 'adhoc_sql'")[-1][2:5] == (
        "allowed", "carol@example.com", "console")


async def test_plan_alerts_and_access_pages(as_user, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    dave = await as_user(demo.token("dave"))
    plan = await dave.get("/console/plan")
    assert plan.status_code == 200
    assert "mask.last4" in plan.text and "omit" in plan.text and "<th scope=\"col\">support</th>" in plan.text
    alerts = await dave.get("/console/alerts")
    assert alerts.status_code == 200 and "No open alerts" in alerts.text
    access = await dave.get("/console/access")
    assert access.status_code == 200 and "Nothing waits for you" in access.text


async def test_offboarding_from_the_console_ends_the_leavers_session(
        as_user, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    with psycopg.connect(demo.admin_url, autocommit=True) as conn:
        conn.execute("INSERT INTO querygate.users (id, email, kind, roles) VALUES "
                     "('usr_leaver_console', 'leaver@example.com', 'person', '{support}') "
                     "ON CONFLICT DO NOTHING")
    from querygate import identity

    async with await psycopg.AsyncConnection.connect(demo.gateway_url, autocommit=True) as conn:
        token, _ = await identity.issue_token(conn, "leaver@example.com")
    leaver = await as_user(token)
    assert (await leaver.get("/console/functions")).status_code == 200
    dave = await as_user(demo.token("dave"))
    users = await dave.get("/console/users")
    assert "leaver@example.com" in users.text and "/console/users/usr_leaver_console" in users.text
    person = await dave.get("/console/users/usr_leaver_console")
    first = await dave.post("/console/users/usr_leaver_console/offboard",
                            data={"csrf": csrf_of(person.text)})
    assert first.status_code == 200 and "Yes, offboard leaver@example.com" in first.text
    assert (await leaver.get("/console/functions")).status_code == 200  # not yet: unconfirmed
    done = await dave.post("/console/users/usr_leaver_console/offboard",
                           data={"csrf": csrf_of(first.text), "confirm": "yes"})
    assert done.status_code == 200 and "is now <strong>offboarded</strong>" in done.text
    ended = await leaver.get("/console/functions")  # this console also ended its sessions
    assert ended.status_code == 303 and ended.headers["location"].startswith("/console/login")
    step = events(demo, "function_name = 'querygate.offboard'")[-1]
    assert step[2:5] == ("allowed", "dave@example.com", "console")


async def test_sign_out_ends_the_session(as_user, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    bob = await as_user(demo.token("bob"))
    page = await bob.get("/console/functions")
    out = await bob.post("/console/logout", data={"csrf": csrf_of(page.text)})
    assert out.status_code == 303 and out.headers["location"] == "/console/login?m=out"
    assert (await bob.get("/console/functions")).status_code == 303
    assert events(demo, "function_name = 'querygate.console.signout'")[-1][3] == "bob@example.com"


async def test_revoked_elsewhere_the_open_session_stops_on_its_next_request(
        as_user, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    """Revoked by the command line (another process): the directory is checked on every page."""
    from querygate import identity

    async with await psycopg.AsyncConnection.connect(demo.gateway_url, autocommit=True) as conn:
        await identity.add_user(conn, "temp@example.com", ["support"])
        token, _ = await identity.issue_token(conn, "temp@example.com")
    temp = await as_user(token)
    page = await temp.get("/console/functions/get_customer_by_id")
    assert page.status_code == 200
    async with await psycopg.AsyncConnection.connect(demo.gateway_url, autocommit=True) as conn:
        await identity.offboard(conn, "temp@example.com", by="test")
    refused = await temp.post("/console/functions/get_customer_by_id", data={
        "csrf": csrf_of(page.text), "p.customer_id": "42", "reason": "TICKET-1"})
    assert refused.status_code == 303 and refused.headers["location"] == "/console/login?m=ended"
    assert "Ada Canary" not in refused.text
    assert (await temp.get("/console/functions")).headers["location"] == "/console/login?m=signin"
    denied = events(demo, "decision = 'denied' AND actor_email IS NULL")[-1]
    assert denied[4] == "console"


def test_the_demo_banner_prints_the_console_url() -> None:
    from pathlib import Path

    from querygate.demo import DEMO_USERS, banner

    lines = banner(Path("/tmp/project"), "127.0.0.1", 8080, dict.fromkeys(DEMO_USERS, "qg_x"))
    assert "console: http://127.0.0.1:8080/console/  (sign in with a token below)" in lines


async def test_a_protected_parameter_is_not_shown_in_clear_on_the_audit_pages(
        as_user, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    """The log keeps a parameter compared with a tagged column as a keyed hash; so do its pages."""
    alice = await as_user(demo.token("alice"))
    page = await alice.get("/console/functions/search_customers")
    found = await alice.post("/console/functions/search_customers", data={
        "csrf": csrf_of(page.text), "p.email_prefix": CANARIES["email"], "reason": "TICKET-5"})
    assert found.status_code == 200 and CANARIES["email"] in found.text  # hers to see
    seq = events(demo, "function_name = 'search_customers'")[-1][0]
    carol = await as_user(demo.token("carol"))
    detail = await carol.get(f"/console/audit/events/{seq}")
    assert detail.status_code == 200 and "email_prefix=" in detail.text
    listing = await carol.get("/console/audit", params={"user": "alice@example.com"})
    for shown in (detail.text, listing.text):
        assert CANARIES["email"] not in shown


async def test_dates_and_timestamps_from_the_pickers_reach_the_gateway(
        as_user, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    dave = await as_user(demo.token("dave"))
    form = await dave.get("/console/functions/list_failed_payments")
    assert 'type="datetime-local"' in form.text and "a date and time, UTC" in form.text
    failed = await dave.post("/console/functions/list_failed_payments", data={
        "csrf": csrf_of(form.text), "p.since": "2020-01-01T00:00", "reason": "BILL-1"})
    assert failed.status_code == 200 and "Result" in failed.text
    form = await dave.get("/console/functions/customers_created_between")
    assert form.text.count('type="date"') == 2
    made = await dave.post("/console/functions/customers_created_between", data={
        "csrf": csrf_of(form.text), "p.from_date": "2020-01-01", "p.to_date": "2030-01-01"})
    assert made.status_code == 200 and "<strong>" in made.text and "row" in made.text
    with psycopg.connect(demo.admin_url) as conn:
        params = conn.execute("SELECT parameters FROM querygate.audit_events WHERE "
                              "function_name = 'list_failed_payments' ORDER BY seq DESC "
                              "LIMIT 1").fetchone()
    assert params is not None and str(params[0]["since"]).startswith("2020-01-01T00:00:00")
