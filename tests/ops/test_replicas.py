"""Two `querygate serve` processes on one project, under concurrent load: one audit chain,
one event per 2xx, revocations and limits shared through PostgreSQL."""

from __future__ import annotations

import itertools
from pathlib import Path

import anyio
import httpx
import pytest

from tests.demo_env import Demo, running_server_process
from tests.guards.conftest import Config, project_copy
from tests.ops.audit_checks import (
    assert_chain_whole,
    assert_one_event_each,
    assert_verifies,
    querygate,
)

pytestmark = pytest.mark.anyio

CALLS = 240
CONCURRENCY = 16
DAILY = 10  # calls of search_customers per person per day, across every process


def limited(config: Config) -> None:
    config["limits"] = {"functions": {"search_customers": {"calls_per_day": DAILY}}}


async def post(client: httpx.AsyncClient, url: str, token: str, function: str,
               params: dict[str, object]) -> httpx.Response:
    return await client.post(f"{url}/v1/call/{function}", json={"params": params,
                             "reason": "TICKET-7"}, headers={"Authorization": f"Bearer {token}"})


@pytest.mark.slow
async def test_two_processes_share_the_chain_revocations_and_limits(
        demo: Demo, tmp_path: Path) -> None:
    project = project_copy(demo, tmp_path, limited)
    with running_server_process(project) as one, running_server_process(project) as two:
        urls = [one.url, two.url]
        tokens = [demo.token("alice"), demo.token("carol")]
        jobs = iter(range(CALLS))
        responses: list[httpx.Response] = []

        async def worker(client: httpx.AsyncClient) -> None:
            for i in jobs:
                responses.append(await post(client, urls[i % 2], tokens[i // 2 % 2],
                                            "get_customer_by_id", {"customer_id": 1 + i % 300}))

        async with httpx.AsyncClient(timeout=30) as client, anyio.create_task_group() as group:
            for _ in range(CONCURRENCY):
                group.start_soon(worker, client)
        assert [r.status_code for r in responses] == [200] * CALLS
        assert_one_event_each(demo.admin_url, [r.json()["audit_id"] for r in responses])
        seqs = sorted(r.json()["receipt"]["seq"] for r in responses)
        assert len(set(seqs)) == CALLS

        # a limit counts every process's calls: 2 x 8 calls, exactly DAILY allowed
        async with httpx.AsyncClient(timeout=30) as client:
            limited_calls = [await post(client, url, tokens[0], "search_customers",
                                        {"email_prefix": "canary"})
                             for url in itertools.islice(itertools.cycle(urls), 2 * 8)]
        statuses = [r.status_code for r in limited_calls]
        assert statuses.count(200) == DAILY and statuses.count(429) == 2 * 8 - DAILY
        assert statuses[:DAILY] == [200] * DAILY

        # a revocation is refused by both processes on the very next call
        bob = demo.token("bob")
        async with httpx.AsyncClient(timeout=30) as client:
            assert [(await post(client, url, bob, "get_customer_by_id",
                                {"customer_id": 42})).status_code for url in urls] == [200, 200]
            revoked = querygate("users", "revoke", "bob@example.com", "--project", str(project))
            assert revoked.returncode == 0, revoked.stderr
            assert [(await post(client, url, bob, "get_customer_by_id",
                                {"customer_id": 42})).status_code for url in urls] == [401, 401]
        assert_one_event_each(demo.admin_url, [r.json()["audit_id"] for r in limited_calls
                                               if r.status_code == 200])
    assert assert_chain_whole(demo.admin_url) >= CALLS + 2 * 8 + 4
    assert_verifies(project)
