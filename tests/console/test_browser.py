"""The console in a real browser: Playwright driving Debian's Chromium against `querygate serve`.

One browser for the module; each test signs in in a context (cookies) of its own. With
``QUERYGATE_CONSOLE_SCREENSHOTS=DIR`` the tests also save the screenshots docs/console.md shows.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from querygate import identity
from querygate.demo import CANARIES
from querygate.detect import Alert, save_alert
from querygate.project import load_project
from tests.demo_env import Demo, running_server_process

SHOTS = os.environ.get("QUERYGATE_CONSOLE_SCREENSHOTS")
WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 390, "height": 844}
# every visible form control must have a label (or an aria-label): returns those that do not
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter(el => el.type !== 'hidden' && !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
  .map(el => el.outerHTML)"""

WIDEST = """() => [...document.querySelectorAll('body *')]
  .filter(el => !el.closest('.scroll') && el.getBoundingClientRect().right > window.innerWidth + 1)
  .map(el => el.tagName + '.' + el.className).slice(0, 8)"""


async def _seed(demo: Demo) -> str:
    """Something to triage: an open alert about alice, and her pending request for billing."""
    project = load_project(demo.project_dir)
    async with await psycopg.AsyncConnection.connect(demo.gateway_url, autocommit=True) as conn:
        alice = await identity.authenticate(conn, demo.token("alice"))
        await identity.request_access(conn, alice, project,
                                      identity.identity_settings(project).access, role="billing",
                                      duration="2h", reason="TICKET-88: refund dispute")
    async with await psycopg.AsyncConnection.connect(demo.admin_url, autocommit=True) as conn:
        alert_id = await save_alert(conn, Alert(
            alice.user_id, "volume", "high", "2026-12-06T09:12:00.000Z",
            "alice@example.com read 412 customers in one hour (usual: 14)", "browser-1",
            {"subjects": 412}, {"subjects_p99": 14}, ("1", "2")), webhook=False)
    assert alert_id is not None
    return alert_id


@pytest.fixture(scope="module")
def alert_id(demo: Demo) -> Iterator[str]:
    """The demo project with approvers for billing (admin), and something to triage."""
    config = demo.project_dir / "querygate.yaml"
    original = config.read_text(encoding="utf-8")
    raw = yaml.safe_load(original)
    raw["roles"]["billing"]["approvers"] = ["admin"]
    config.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    yield asyncio.run(_seed(demo))
    config.write_text(original, encoding="utf-8")


@pytest.fixture(scope="module")
def server(demo: Demo, alert_id: str) -> Iterator[str]:
    with running_server_process(demo.project_dir) as proc:
        yield proc.url


@pytest.fixture(scope="module")
def browser(server: str) -> Iterator[Browser]:
    """After the server: Playwright's loop then runs in this thread, and asyncio.run cannot."""
    chromium = shutil.which("chromium")
    assert chromium is not None, \
        "install Debian's chromium (apt-get install chromium; ./run test does as root)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium)
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    made = browser.new_context(viewport=WIDE, timezone_id="Europe/Berlin", locale="en-GB")
    made.set_default_timeout(15000)
    yield made
    made.close()


def shot(page: Page, name: str, *, full: bool = True) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"console-{name}.png"), full_page=full)


def csp_violations(page: Page) -> list[str]:
    found: list[str] = []
    page.on("console", lambda m: found.append(m.text) if "Content Security Policy" in m.text
            else None)
    return found


def sign_in(page: Page, server: str, token: str) -> None:
    page.goto(f"{server}/")
    expect(page).to_have_url(f"{server}/console/login")
    page.get_by_label("Your querygate token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{server}/console/functions")


def call_customer(page: Page, server: str, customer: str, reason: str) -> None:
    page.goto(f"{server}/console/functions/get_customer_by_id")
    page.get_by_label("customer_id").fill(customer)
    page.get_by_label("Reason").fill(reason)
    page.get_by_role("button", name="Call get_customer_by_id").click()


def test_sign_in_and_a_masked_call(context: BrowserContext, server: str, demo: Demo) -> None:
    page = context.new_page()
    violations = csp_violations(page)
    page.goto(f"{server}/console/login")
    shot(page, "login")
    sign_in(page, server, demo.token("alice"))
    expect(page.get_by_role("heading", name="Functions you may call")).to_be_visible()
    shot(page, "functions")
    call_customer(page, server, "42", "TICKET-1042")
    masked = page.locator('td.masked[data-rule="mask.last4"]').first
    expect(masked).to_contain_text("****4242")
    expect(masked).to_contain_text("masked: mask.last4")
    expect(page.get_by_text("Not returned (omitted by policy)")).to_contain_text("ssn")
    content = page.content()
    assert CANARIES["iban"] not in content and CANARIES["ssn"] not in content
    assert demo.token("alice") not in page.url and demo.token("alice") not in content
    expect(page.locator("footer .tz")).to_have_text(" (Europe/Berlin)")  # console.js ran
    shot(page, "call")
    assert violations == []


def test_the_subject_page_shows_who_saw_what_in_local_time(context: BrowserContext, server: str,
                                                         demo: Demo) -> None:
    alice = context.new_page()
    sign_in(alice, server, demo.token("alice"))
    call_customer(alice, server, "42", "TICKET-77")
    expect(alice.locator("td.masked").first).to_be_visible()
    context.clear_cookies()
    page = context.new_page()
    violations = csp_violations(page)
    sign_in(page, server, demo.token("carol"))
    page.get_by_role("link", name="Audit", exact=True).click()
    page.get_by_label("Data subject").fill("customer:42")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("heading", name="Who accessed customer:42")).to_be_visible()
    row = page.locator("table.events tbody tr", has_text="TICKET-77")
    expect(row).to_contain_text("alice@example.com")
    expect(row).to_contain_text("iban=mask.last4")
    when = row.locator("time")
    assert when.get_attribute("title", timeout=1000).endswith(" UTC")  # type: ignore[union-attr]
    assert "CET" in when.inner_text() or "CEST" in when.inner_text()
    shot(page, "audit-subject")
    row.get_by_role("link").first.click()
    expect(page.get_by_role("heading", name="Audit event")).to_be_visible()
    expect(page.get_by_text("Intact: its content matches its hash")).to_be_visible()
    shot(page, "event")
    page.get_by_role("link", name="Integrity").click()
    page.get_by_role("button", name="Verify now").click()
    expect(page.get_by_text("Verified: no event was altered")).to_be_visible()
    shot(page, "integrity")
    page.goto(f"{server}/console/audit?user=alice@example.com")
    expect(page.get_by_role("heading", name="Everything alice@example.com did")).to_be_visible()
    shot(page, "audit-user")
    page.goto(f"{server}/console/reports")
    shot(page, "reports")
    page.goto(f"{server}/console/alerts")
    expect(page.get_by_role("link", name="read 412 customers")).to_be_visible()
    shot(page, "alerts")
    assert violations == []


def test_a_forged_form_is_refused(context: BrowserContext, server: str, demo: Demo) -> None:
    page = context.new_page()
    sign_in(page, server, demo.token("alice"))
    page.goto(f"{server}/console/functions/get_customer_by_id")
    page.locator('form.call input[name="csrf"]').evaluate("el => { el.value = 'forged' }")
    page.get_by_label("customer_id").fill("42")
    page.get_by_role("button", name="Call get_customer_by_id").click()
    expect(page.get_by_role("alert")).to_contain_text("security token")
    assert "Ada Canary" not in page.content() and page.locator("td").count() == 0


def test_revocation_ends_an_open_session(context: BrowserContext, server: str, demo: Demo) -> None:
    page = context.new_page()
    sign_in(page, server, demo.token("bob"))
    call_customer(page, server, "42", "BILL-1")
    expect(page.locator("table tbody tr")).to_have_count(1)
    revoked = subprocess.run([sys.executable, "-m", "querygate", "users", "revoke",
                              "bob@example.com", "--project", str(demo.project_dir)],
                             capture_output=True, text=True, timeout=60)
    assert revoked.returncode == 0, revoked.stderr
    page.get_by_role("button", name="Call get_customer_by_id").click()  # the form, sent again
    expect(page).to_have_url(f"{server}/console/login?m=ended")
    expect(page.get_by_role("status")).to_contain_text("Your session has ended")


def test_every_input_is_labelled_and_pages_fit_a_narrow_window(
        browser: Browser, server: str, demo: Demo, alert_id: str) -> None:
    for viewport in (WIDE, NARROW):
        context = browser.new_context(viewport=viewport, timezone_id="Europe/Berlin")
        page = context.new_page()
        page.goto(f"{server}/console/login")
        assert page.evaluate(UNLABELLED) == []
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        sign_in(page, server, demo.token("dave"))
        for path in ("/console/functions", "/console/functions/get_customer_by_id",
                     "/console/functions/list_customer_orders", "/console/sql",
                     "/console/audit?subject=customer:42", "/console/audit/integrity",
                     "/console/reports", "/console/alerts", f"/console/alerts/{alert_id}",
                     "/console/access", "/console/users", "/console/plan"):
            page.goto(f"{server}{path}")
            assert page.evaluate(UNLABELLED) == [], path
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, (path, viewport, overflow, page.evaluate(WIDEST))
            if viewport is WIDE and path in ("/console/users", "/console/plan",
                                             "/console/access", f"/console/alerts/{alert_id}"):
                shot(page, path.rsplit("/", 1)[1].replace(alert_id, "alert"))
        if viewport is NARROW:
            page.goto(f"{server}/console/audit?subject=customer:42")
            shot(page, "narrow", full=False)
        else:
            page.goto(f"{server}/console/users")
            page.get_by_role("link", name="Manage alice@example.com").click()
            shot(page, "user")
            page.get_by_role("button", name="Offboard…").click()
            expect(page.get_by_role("button", name="Yes, offboard alice@example.com")).to_be_visible()
            shot(page, "confirm")
        context.close()
