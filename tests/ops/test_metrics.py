"""GET /metrics: counters move with calls, and no user, token, subject or value leaks into it."""

from __future__ import annotations

import httpx
import psycopg
import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from querygate.gateway import Gateway
from tests.demo_env import Demo, call

pytestmark = pytest.mark.anyio

PLANTED_ID = 987654321
PLANTED_EMAIL = "planted.canary.zq@example.org"
PLANTED_PREFIX = "zq-planted-prefix"
PLANTED_ORDER = "ord_planted_9q7x"
INVENTED = "no_such_function_zq17"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and sorted labels."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return response.text


@pytest.fixture(scope="module")
def planted(demo: Demo) -> int:
    with psycopg.connect(demo.admin_url, autocommit=True) as conn:
        conn.execute("INSERT INTO customers (id, full_name, email, country, plan_tier, created_at) "
                     "VALUES (%s, 'Planted Canary', %s, 'DE', 'pro', now()) "
                     "ON CONFLICT DO NOTHING", (PLANTED_ID, PLANTED_EMAIL))
    return PLANTED_ID


async def test_calls_move_the_counters_and_nothing_personal_is_exposed(
        demo: Demo, client: httpx.AsyncClient, planted: int) -> None:
    before = samples(await scrape(client))
    alice, bob = demo.token("alice"), demo.token("bob")
    for _ in range(3):
        ok = await call(client, alice, "get_customer_by_id", {"customer_id": planted})
        assert ok.status_code == 200 and ok.json()["rows"][0][0] == planted
    assert (await call(client, alice, "search_customers",
                       {"email_prefix": PLANTED_PREFIX})).status_code == 200
    assert (await call(client, alice, "get_order_by_id",
                       {"order_id": PLANTED_ORDER})).status_code == 200
    assert (await call(client, bob, "search_customers",
                       {"email_prefix": PLANTED_PREFIX})).status_code == 403
    assert (await call(client, alice, INVENTED)).status_code == 404
    assert (await call(client, "qg_not-a-real-token", "get_customer_by_id",
                       {"customer_id": planted})).status_code == 401
    text = await scrape(client)
    after = samples(text)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    calls = "querygate_calls_total"
    assert moved(calls, function="get_customer_by_id", decision="allowed", code="ok",
                 client="http") == 3
    assert moved(calls, function="search_customers", decision="denied", code="policy_denied",
                 client="http") == 1
    assert moved(calls, function="(unknown)", decision="denied", code="not_found",
                 client="http") == 1
    assert moved(calls, function="get_customer_by_id", decision="denied",
                 code="not_authenticated", client="http") == 1
    assert moved("querygate_call_duration_seconds_count", function="get_customer_by_id",
                 decision="allowed", client="http") == 3
    assert moved("querygate_audit_events_total", outcome="written") >= 8
    assert moved("querygate_audit_batch_events_count") >= 1
    assert moved("querygate_audit_wait_seconds_count") >= 8
    assert moved("querygate_pool_checkout_seconds_count", pool="query") >= 5
    assert value(after, "querygate_pool_max", pool="query") >= 10  # this gateway and any other open
    assert value(after, "querygate_pool_max", pool="audit") >= 10
    assert moved("querygate_pool_requests_total", pool="audit") >= 1
    with psycopg.connect(demo.admin_url) as conn:
        head = conn.execute("SELECT seq FROM querygate.audit_head").fetchone()
        actor = conn.execute("SELECT id FROM querygate.users WHERE email = 'alice@example.com'"
                             ).fetchone()
    assert head is not None and actor is not None
    assert value(after, "querygate_audit_head_seq") == head[0]
    assert value(after, "querygate_store_scrape_ok") == 1
    for secret in (alice, bob, "alice@example.com", "bob@example.com", str(actor[0]),
                   str(planted), PLANTED_EMAIL, PLANTED_PREFIX, PLANTED_ORDER, INVENTED,
                   "Planted Canary", "qg_not-a-real-token"):
        assert secret not in text, secret


async def test_detector_lag_and_alerts_come_from_the_store(
        demo: Demo, client: httpx.AsyncClient) -> None:
    assert (await call(client, demo.token("alice"), "get_customer_by_id",
                       {"customer_id": 7})).status_code == 200
    with psycopg.connect(demo.admin_url, autocommit=True) as conn:
        head = conn.execute("SELECT seq FROM querygate.audit_head").fetchone()
        assert head is not None and head[0] >= 2
        conn.execute("INSERT INTO querygate.detect_cursor (id, seq) VALUES (1, %s) "
                     "ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq", (head[0] - 2,))
        conn.execute("INSERT INTO querygate.alerts (id, key, actor_id, rule, severity, raised_at, "
                     "summary, details) VALUES ('alr_metrics_test', 'metrics-test', 'usr_x', "
                     "'volume_spike', 'high', now(), 'planted', '{}')")
    scraped = samples(await scrape(client))
    assert value(scraped, "querygate_detector_lag_events") == 2
    assert value(scraped, "querygate_detector_cursor_seq") == head[0] - 2
    assert value(scraped, "querygate_alerts_raised_total", rule="volume_spike",
                 severity="high") >= 1


async def test_a_store_that_cannot_be_read_leaves_the_shared_figures_out(
        demo: Demo, client: httpx.AsyncClient) -> None:
    with psycopg.connect(demo.admin_url, autocommit=True) as conn:
        conn.execute("REVOKE SELECT ON querygate.alerts FROM querygate_gateway")
    try:
        scraped = samples(await scrape(client))
    finally:
        with psycopg.connect(demo.admin_url, autocommit=True) as conn:
            conn.execute("GRANT SELECT ON querygate.alerts TO querygate_gateway")
    assert value(scraped, "querygate_store_scrape_ok") == 0
    assert not any(name == "querygate_audit_head_seq" for name, _ in scraped)
    assert value(samples(await scrape(client)), "querygate_store_scrape_ok") == 1


async def test_every_metric_is_documented(client: httpx.AsyncClient) -> None:
    from pathlib import Path

    assert (await call(client, "qg_unknown", "get_customer_by_id", {"customer_id": 1})
            ).status_code == 401
    doc = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    names = {family.name for family in text_string_to_metric_families(await scrape(client))
             if family.name.startswith("querygate_")}
    assert len(names) >= 20
    for name in names:
        suffix = "_total" if f"`{name}_total`" in doc else ""
        assert f"`{name}{suffix}`" in doc, name


async def test_every_front_door_and_ad_hoc_sql_are_labelled(
        demo: Demo, gateway: Gateway) -> None:
    from querygate.errors import NotFound, PolicyDenied

    before = samples(generate_latest(REGISTRY).decode())
    alice = demo.token("alice")
    await gateway.call(alice, "get_customer_by_id", {"customer_id": 3}, "T-1", client="postgres")
    await gateway.call(alice, "get_customer_by_id", {"customer_id": 3}, "T-1", client="mcp")
    await gateway.call(alice, "get_customer_by_id", {"customer_id": 3}, "T-1",
                       client="made-up door")
    with pytest.raises(NotFound):
        await gateway.call(alice, "zq_invented", {}, client="console")
    with pytest.raises(PolicyDenied):  # alice's role has no ad-hoc SQL
        await gateway.sql(alice, "SELECT 1", "T-1", client="cli")
    after = samples(generate_latest(REGISTRY).decode())

    def moved(**labels: str) -> float:
        return value(after, "querygate_calls_total", **labels) - value(
            before, "querygate_calls_total", **labels)

    ok = {"function": "get_customer_by_id", "decision": "allowed", "code": "ok"}
    assert moved(**ok, client="postgres") == moved(**ok, client="mcp") == 1
    assert moved(**ok, client="other") == 1
    assert moved(function="(unknown)", decision="denied", code="not_found", client="console") == 1
    assert moved(function="adhoc_sql", decision="denied", code="policy_denied", client="cli") == 1
