"""Two hosts, made with network namespaces and veth, each running `querygate serve` against one
PostgreSQL reached over its link: one audit chain without a gap, one event per 2xx, a daily
limit and a revocation that hold across the hosts."""

from __future__ import annotations

import itertools
from pathlib import Path

import anyio
import httpx
import psycopg
import pytest

from querygate.identity import add_user, issue_token
from querygate.provision import DEFAULT_GATEWAY_ROLE, setup_database, url_for
from tests.ops.audit_checks import (
    assert_chain_whole,
    assert_one_event_each,
    assert_verifies,
    querygate,
)
from tests.ops.hosts import hosts, over_tcp, postgres_on, serve_on

pytestmark = pytest.mark.anyio

CALLS, CONCURRENCY, DAILY = 200, 16, 10

QUERIES = """\
-- name: get_customer_by_id
-- param customer_id: int
SELECT id, email FROM customers WHERE id = :customer_id;

-- name: lookup_customer
-- param customer_id: int
SELECT id FROM customers WHERE id = :customer_id;
"""


async def write_project(folder: Path, server: str, database_url: str) -> dict[str, str]:
    """A one-table project whose database URL is ``database_url``; returns tokens by user."""
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (id bigint PRIMARY KEY, email text)")
        conn.execute("INSERT INTO customers SELECT i, 'c' || i || '@example.com' "
                     "FROM generate_series(1, 300) i")
    setup_database(server)
    (folder / "queries").mkdir()
    (folder / "queries" / "q.sql").write_text(QUERIES)
    (folder / "querygate.yaml").write_text(
        f"database:\n  url: '{database_url}'\nsecret_key: hosts-test-secret-key-0123456789\n"
        "classification:\n  public.customers:\n    subject: customer\n"
        "    columns: {email: [pii.contact]}\n"
        "roles:\n  support:\n    functions: ['*']\n    fields: {pii.contact: allow}\n"
        f"limits:\n  functions:\n    lookup_customer: {{calls_per_day: {DAILY}}}\n")
    tokens = {}
    async with await psycopg.AsyncConnection.connect(
            url_for(server, user=DEFAULT_GATEWAY_ROLE), autocommit=True) as conn:
        for name in ("ann", "ben"):
            await add_user(conn, f"{name}@example.com", ["support"])
            tokens[name], _ = await issue_token(conn, f"{name}@example.com")
    return tokens


async def post(client: httpx.AsyncClient, url: str, token: str, function: str,
               customer_id: int) -> httpx.Response:
    return await client.post(f"{url}/v1/call/{function}", json={
        "params": {"customer_id": customer_id}, "reason": "TICKET-8"},
        headers={"Authorization": f"Bearer {token}"})


@pytest.mark.slow
async def test_two_hosts_share_one_chain_limits_and_revocations(tmp_path: Path) -> None:
    with hosts(2) as (one, two), postgres_on(tmp_path / "pg", [
            one.gateway_side, two.gateway_side]) as server:
        gateway = url_for(over_tcp(server, one.gateway_side), user=DEFAULT_GATEWAY_ROLE)
        projects = [tmp_path / "one", tmp_path / "two"]
        for project in projects:
            project.mkdir()
        tokens = await write_project(projects[0], server, gateway)
        # the second host reaches the same server over its own link
        (projects[1] / "queries").mkdir()
        (projects[1] / "queries" / "q.sql").write_text(QUERIES)
        (projects[1] / "querygate.yaml").write_text(
            (projects[0] / "querygate.yaml").read_text().replace(
                f"host={one.gateway_side}", f"host={two.gateway_side}"))
        assert f"host={two.gateway_side}" in (projects[1] / "querygate.yaml").read_text()
        with serve_on(one, projects[0]) as first, serve_on(two, projects[1]) as second:
            urls = [first, second]
            jobs = iter(range(CALLS))
            responses: list[httpx.Response] = []

            async def worker(client: httpx.AsyncClient) -> None:
                for i in jobs:
                    responses.append(await post(client, urls[i % 2], tokens["ann"],
                                                "get_customer_by_id", 1 + i % 300))

            async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
                async with anyio.create_task_group() as group:
                    for _ in range(CONCURRENCY):
                        group.start_soon(worker, client)
                assert [r.status_code for r in responses] == [200] * CALLS
                seqs = {r.json()["receipt"]["seq"] for r in responses}
                assert len(seqs) == CALLS

                # the daily limit counts both hosts' calls: exactly DAILY of 2 x 8 get through
                limited = [await post(client, url, tokens["ann"], "lookup_customer", 42)
                           for url in itertools.islice(itertools.cycle(urls), 2 * 8)]
                statuses = [r.status_code for r in limited]
                assert statuses == [200] * DAILY + [429] * (2 * 8 - DAILY), statuses

                # a revocation made on this machine is refused by both hosts on the next call
                before = [(await post(client, url, tokens["ben"], "get_customer_by_id", 42))
                          for url in urls]
                assert [r.status_code for r in before] == [200, 200]
                revoked = querygate("users", "revoke", "ben@example.com", "--project",
                                    str(projects[0]))
                assert revoked.returncode == 0, revoked.stderr
                after = [(await post(client, url, tokens["ben"], "get_customer_by_id", 42))
                         for url in urls]
                assert [r.status_code for r in after] == [401, 401]
        ok = [r for r in responses + limited + before if r.status_code == 200]
        assert_one_event_each(server, [r.json()["audit_id"] for r in ok])
        assert assert_chain_whole(server) >= len(ok)
        for project in projects:  # each host's view of the log verifies
            assert_verifies(project)
