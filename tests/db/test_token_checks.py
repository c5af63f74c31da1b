"""Token checks in batches: each call still gets its own answer, checked against the directory
after it arrived; a revocation holds for the very next batch; failures fail every check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from querygate import identity
from querygate.errors import NotAuthenticated, Unavailable
from querygate.execute import query_pool
from querygate.identity import _checks
from querygate.settings import Settings
from tests.db.conftest import Store

pytestmark = pytest.mark.anyio


@pytest.fixture
async def pool(store: Store) -> AsyncIterator[AsyncConnectionPool[Any]]:
    opened = query_pool(store.gateway_url, Settings(pool_min_size=1, pool_max_size=4))
    await opened.open(wait=True)
    yield opened
    await opened.close()


async def people(store: Store) -> dict[str, str]:
    """Tokens: two people, an agent acting for one of them, and one revoked person."""
    async with await psycopg.AsyncConnection.connect(store.gateway_url, autocommit=True) as conn:
        await identity.add_user(conn, "ana@example.com", ["support"])
        await identity.add_user(conn, "ben@example.com", ["billing", "support"])
        await identity.add_user(conn, "bot@agents.example.com", ["support", "billing"],
                                kind="service")
        await identity.add_user(conn, "gone@example.com", ["support"])
        tokens = {email: (await identity.issue_token(conn, email))[0]
                  for email in ("ana@example.com", "ben@example.com", "gone@example.com")}
        tokens["bot"] = (await identity.issue_token(conn, "bot@agents.example.com",
                                                    on_behalf_of="ben@example.com"))[0]
        await identity.revoke_user(conn, "gone@example.com")
    return tokens


def counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every batch that goes to the database."""
    sizes: list[int] = []
    real = _checks.look_up

    async def look_up(conn: psycopg.AsyncConnection[Any],
                      digests: Sequence[bytes]) -> dict[bytes, tuple[Any, ...]]:
        sizes.append(len(digests))
        return await real(conn, digests)

    monkeypatch.setattr(_checks, "look_up", look_up)
    return sizes


async def test_concurrent_checks_are_batched_and_each_gets_its_own_answer(
        store: Store, pool: AsyncConnectionPool[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = await people(store)
    sizes = counting(monkeypatch)
    checks = identity.TokenChecks(pool, timeout_s=5)
    asked = [tokens["ana@example.com"], tokens["ben@example.com"], tokens["bot"],
             tokens["gone@example.com"], "qg_" + "x" * 43, None] * 20
    try:
        answers = await asyncio.gather(*(checks.check(t) for t in asked),
                                       return_exceptions=True)
    finally:
        await checks.stop()
    for token, answer in zip(asked, answers, strict=True):
        if token == tokens["ana@example.com"]:
            assert isinstance(answer, identity.Identity) and answer.email == "ana@example.com"
            assert answer.roles == ("support",)
        elif token == tokens["ben@example.com"]:
            assert isinstance(answer, identity.Identity) and answer.roles == ("billing", "support")
        elif token == tokens["bot"]:
            assert isinstance(answer, identity.Identity)
            assert answer.email == "bot@agents.example.com"
            assert answer.context["on_behalf_of_email"] == "ben@example.com"
        elif token is None:
            assert isinstance(answer, NotAuthenticated) and "malformed" in answer.message
        else:
            assert isinstance(answer, NotAuthenticated), answer
            assert answer.message == "unknown, expired or revoked token"
    assert sum(sizes) < 100  # 100 well-formed tokens asked, 5 distinct: far fewer look-ups
    assert max(sizes) > 1


async def test_a_revocation_holds_for_the_next_batch(
        store: Store, pool: AsyncConnectionPool[Any]) -> None:
    tokens = await people(store)
    checks = identity.TokenChecks(pool, timeout_s=5)
    token = tokens["ana@example.com"]
    try:
        first = await asyncio.gather(*(checks.check(token) for _ in range(10)))
        assert {who.email for who in first} == {"ana@example.com"}
        async with await psycopg.AsyncConnection.connect(store.gateway_url,
                                                         autocommit=True) as conn:
            await identity.revoke_user(conn, "ana@example.com")
        after = await asyncio.gather(*(checks.check(token) for _ in range(10)),
                                     return_exceptions=True)
    finally:
        await checks.stop()
    assert all(isinstance(a, NotAuthenticated) for a in after), after


async def test_a_call_alone_is_checked_on_its_own_connection(
        store: Store, pool: AsyncConnectionPool[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = await people(store)
    sizes = counting(monkeypatch)
    checks = identity.TokenChecks(pool, timeout_s=5)
    async with pool.connection() as conn:

        async def own() -> psycopg.AsyncConnection[Any]:
            return conn

        try:
            who = await checks.check(tokens["ben@example.com"], own)
        finally:
            await checks.stop()
    assert who.email == "ben@example.com" and sizes == []  # not through the batch


async def test_a_failing_directory_fails_every_check_in_the_batch(
        store: Store, pool: AsyncConnectionPool[Any]) -> None:
    tokens = await people(store)
    with psycopg.connect(store.admin_url, autocommit=True) as conn:
        conn.execute("REVOKE SELECT ON querygate.tokens FROM querygate_gateway")
    checks = identity.TokenChecks(pool, timeout_s=5)
    try:
        answers = await asyncio.gather(*(checks.check(tokens["ana@example.com"])
                                         for _ in range(8)), return_exceptions=True)
    finally:
        await checks.stop()
    assert all(isinstance(a, psycopg.errors.InsufficientPrivilege) for a in answers), answers


async def test_stopping_fails_the_waiting_checks(
        store: Store, pool: AsyncConnectionPool[Any]) -> None:
    tokens = await people(store)
    checks = identity.TokenChecks(pool, timeout_s=5)
    waiting = [asyncio.ensure_future(checks.check(tokens["ana@example.com"])) for _ in range(4)]
    await asyncio.sleep(0)  # queued; the first batch is on its way
    await checks.stop()
    answers = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(a, Unavailable | identity.Identity) for a in answers), answers
    assert any(isinstance(a, Unavailable) for a in answers)
