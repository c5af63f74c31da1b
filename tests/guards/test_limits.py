"""Limits: 429 with a clear message; counters shared by gateways and kept across restarts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from querygate.errors import ProjectError
from querygate.limits import load_limits
from querygate.project import load_project
from querygate.provision import setup_database
from tests.demo_env import Demo, call, serving
from tests.guards.conftest import Config, latest_event, project_copy

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module", autouse=True)
def limit_tables(demo: Demo) -> Iterator[None]:
    setup_database(demo.admin_url, parts=("limits",), read_schemas=())
    yield


@pytest.fixture(autouse=True)
def fresh_counters(demo: Demo) -> None:
    with psycopg.connect(demo.admin_url, autocommit=True) as conn:
        conn.execute("DELETE FROM querygate.limit_calls; DELETE FROM querygate.limit_subjects")


def limited(role: dict[str, int] | None = None,
            top: Config | None = None) -> Callable[[Config], None]:
    def edit(config: Config) -> None:
        if role:
            config["roles"]["support"]["limits"] = role
        if top:
            config["limits"] = top
    return edit


async def lookup(client: httpx.AsyncClient, demo: Demo, customer: int,
                 who: str = "alice") -> httpx.Response:
    return await call(client, demo.token(who), "get_customer_by_id", {"customer_id": customer},
                      reason="TICKET-1042")


async def test_calls_per_hour_are_shared_by_gateways_and_survive_a_restart(
        demo: Demo, tmp_path: Path) -> None:
    project = project_copy(demo, tmp_path, limited({"calls_per_hour": 3}))
    async with serving(project) as one, serving(project) as two:
        for client in (one, two, one):
            assert (await lookup(client, demo, 42)).status_code == 200
        refused = await lookup(two, demo, 42)
    assert refused.status_code == 429
    message = refused.json()["error"]["message"]
    assert "this is call 4 this hour; the limit is 3 (role support: calls_per_hour)" in message
    assert "Try again after" in message
    assert latest_event(demo, "alice@example.com")[:2] == ("error", "limit_exceeded")
    async with serving(project) as restarted:
        assert (await lookup(restarted, demo, 42)).status_code == 429
        other = await call(restarted, demo.token("carol"), "get_customer_by_id",
                           {"customer_id": 42}, reason="DSAR-9")
        assert other.status_code == 200  # carol's role sets no limit


async def test_different_subjects_per_day(demo: Demo, tmp_path: Path) -> None:
    project = project_copy(demo, tmp_path, limited({"subjects_per_day": 3}))
    async with serving(project) as client:
        for customer in (1, 2, 3, 1, 2):
            assert (await lookup(client, demo, customer)).status_code == 200
        refused = await lookup(client, demo, 4)
        assert refused.status_code == 429
        body = refused.json()
        assert "rows" not in body
        assert "4 different subjects today (UTC); the limit is 3 (role support: " \
               "subjects_per_day), so no rows were released" in body["error"]["message"]
        again = await lookup(client, demo, 3)
        assert again.status_code == 200
        search = await call(client, demo.token("alice"), "search_customers",
                            {"email_prefix": "a"}, reason="TICKET-1042")
        assert search.status_code == 429


async def test_the_30_day_window_counts_earlier_days(demo: Demo, tmp_path: Path) -> None:
    with psycopg.connect(demo.admin_url, autocommit=True) as conn:
        alice = conn.execute("SELECT id FROM querygate.users WHERE email = 'alice@example.com'"
                             ).fetchone()
        assert alice is not None
        for days_ago, subject in ((10, "customer:1"), (20, "customer:2"), (40, "customer:3")):
            conn.execute("INSERT INTO querygate.limit_subjects VALUES (%s, '*', "
                         "(now() AT TIME ZONE 'UTC')::date - %s, %s)",
                         (alice[0], days_ago, subject))
    project = project_copy(demo, tmp_path,
                           limited({"subjects_per_30_days": 3}))
    async with serving(project) as client:
        assert (await lookup(client, demo, 1)).status_code == 200
        assert (await lookup(client, demo, 7)).status_code == 200
        refused = await lookup(client, demo, 8)  # 1, 2, 7 in the window; 3 fell out
        assert refused.status_code == 429
        assert "in the last 30 days" in refused.json()["error"]["message"]


async def test_function_and_user_limits(demo: Demo, tmp_path: Path) -> None:
    top = {"functions": {"search_*": {"calls_per_hour": 1}},
           "users": {"alice@example.com": {"subjects_per_day": 100}}}
    project = project_copy(demo, tmp_path,
                           limited({"subjects_per_day": 1}, top))
    async with serving(project) as client:
        for customer in (1, 2, 3):  # alice's own entry replaces her role's limit
            assert (await lookup(client, demo, customer)).status_code == 200
        first = await call(client, demo.token("alice"), "search_customers",
                           {"email_prefix": "canary"}, reason="TICKET-1042")
        second = await call(client, demo.token("alice"), "search_customers",
                            {"email_prefix": "canary"}, reason="TICKET-1042")
    assert first.status_code == 200 and second.status_code == 429
    assert "(function search_*: calls_per_hour)" in second.json()["error"]["message"]


async def test_warn_mode_allows_and_records(demo: Demo, tmp_path: Path) -> None:
    project = project_copy(demo, tmp_path, limited({"calls_per_hour": 1},
                                                   {"mode": "warn"}))
    async with serving(project) as client:
        for _ in range(2):
            assert (await lookup(client, demo, 42)).status_code == 200
    context = latest_event(demo, "alice@example.com")[2]
    assert context["limit"] == "exceeded calls_per_hour (role support)"


async def test_no_counter_store_means_refused(demo: Demo, tmp_path: Path) -> None:
    project = project_copy(demo, tmp_path, limited({"subjects_per_day": 50}))
    with psycopg.connect(demo.admin_url, autocommit=True) as conn:
        conn.execute("REVOKE INSERT ON querygate.limit_subjects FROM querygate_gateway")
    try:
        async with serving(project) as client:
            response = await lookup(client, demo, 42)
        assert response.status_code == 503
        assert "rows" not in response.json()
        assert "limits store could not count" in response.json()["error"]["message"]
    finally:
        with psycopg.connect(demo.admin_url, autocommit=True) as conn:
            conn.execute("GRANT INSERT ON querygate.limit_subjects TO querygate_gateway")


@pytest.mark.parametrize(("edit", "message"), [
    (limited({"calls_per_fortnight": 3}), "unknown limit 'calls_per_fortnight'"),
    (limited({"calls_per_hour": 0}), "must be a positive whole number"),
    (limited(None, {"mode": "maybe"}), "limits.mode must be enforce or warn"),
    (limited(None, {"roles": {}}), "unknown key 'roles'"),
])
def test_configuration_errors(demo: Demo, tmp_path: Path, edit: Callable[[Config], None],
                              message: str) -> None:
    project = load_project(project_copy(demo, tmp_path, edit))
    with pytest.raises(ProjectError, match=message):
        load_limits(project)
