"""The audit log is append-only in fact, chained, gapless, and tampering is named."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import orjson
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from querygate import audit
from querygate.audit import COLUMNS, AuditEvent
from querygate.audit._store import append_batch, encode_event
from querygate.errors import AuditUnavailable
from querygate.execute import audit_pool
from querygate.settings import Settings
from tests.db.conftest import Store

UNGUARD = "ALTER TABLE querygate.audit_events DROP CONSTRAINT audit_events_content"

pytestmark = pytest.mark.anyio


def event(n: int, **changes: Any) -> AuditEvent:
    base: dict[str, Any] = dict(
        occurred_at=dt.datetime(2026, 3, 15, 14, 23, n % 60, tzinfo=dt.UTC),
        function_name="get_customer_by_id", decision="allowed", actor_id="usr_1",
        actor_email="alex@example.com", actor_roles=("support",),
        parameters={"customer_id": n}, reason="TICKET-1", rows_returned=1,
        fields={"iban": "mask.last4", "email": "allow"}, subjects=(("customer", str(n)),),
        client_addr="127.0.0.1", duration_us=3100,
    )
    base.update(changes)
    return AuditEvent(**base)


async def open_pool(url: str, size: int = 4) -> AsyncConnectionPool[Any]:
    pool = audit_pool(url, Settings(audit_pool_max_size=size, audit_timeout_ms=5000))
    await pool.open(wait=True)
    return pool


async def append_many(store: Store, count: int, concurrency: int = 1) -> list[audit.Receipt]:
    pool = await open_pool(store.gateway_url, size=concurrency)
    try:
        gate = asyncio.Semaphore(concurrency)

        async def one(n: int) -> audit.Receipt:
            async with gate:
                return await audit.append(pool, event(n), timeout_s=10)

        return await asyncio.gather(*(one(n) for n in range(count)))
    finally:
        await pool.close()


async def verify(url: str) -> audit.Verification:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        return await audit.verify(conn)


def tamper(store: Store, *statements: str) -> None:
    """A superuser who switches the triggers off and edits the table directly."""
    with psycopg.connect(store.admin_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE querygate.audit_events DISABLE TRIGGER USER")
        for statement in statements:
            conn.execute(statement.encode())
        for trigger in ("audit_events_chain", "audit_events_no_change", "audit_events_no_truncate"):
            conn.execute(f"ALTER TABLE querygate.audit_events ENABLE ALWAYS TRIGGER {trigger}")


async def test_appends_chain_and_verify(store: Store) -> None:
    receipts = await append_many(store, 5)
    assert [r.seq for r in receipts] == [1, 2, 3, 4, 5]
    result = await verify(store.gateway_url)
    assert result.ok and result.checked == 5 and result.head_hash == receipts[-1].hash


async def test_64_concurrent_writers_keep_the_sequence_gapless(store: Store) -> None:
    receipts = await append_many(store, 256, concurrency=64)
    assert sorted(r.seq for r in receipts) == list(range(1, 257))
    assert (await verify(store.gateway_url)).ok


@pytest.mark.parametrize("statement", [
    "UPDATE querygate.audit_events SET reason = 'x'",
    "DELETE FROM querygate.audit_events",
    "TRUNCATE querygate.audit_events",
    "UPDATE querygate.audit_head SET seq = 0",
    "DELETE FROM querygate.audit_head",
])
async def test_the_gateway_role_cannot_change_the_log(store: Store, statement: str) -> None:
    await append_many(store, 2)
    with psycopg.connect(store.gateway_url, autocommit=True) as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement.encode())
    assert (await verify(store.gateway_url)).ok


@pytest.mark.parametrize("statement", [
    "UPDATE querygate.audit_events SET reason = 'x'",
    "DELETE FROM querygate.audit_events WHERE seq = 1",
    "TRUNCATE querygate.audit_events",
])
async def test_triggers_hold_against_a_superuser_in_replica_mode(store: Store,
                                                                 statement: str) -> None:
    await append_many(store, 2)
    with psycopg.connect(store.admin_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute(statement.encode())
    assert (await verify(store.gateway_url)).checked == 2


async def test_audit_append_takes_only_the_content_of_well_formed_events(store: Store) -> None:
    """The gateway's one way in, called by hand as the gateway's role: places it claims are
    ignored, content that does not hash to its content_hash is refused, and a batch that is not
    a JSON array of 1 to 10000 events is refused; nothing refused is written."""
    await append_many(store, 1)
    document = orjson.loads(encode_event(event(5)))
    claimed = {**document, "seq": 999, "prev_hash": "\\x00", "hash": "\\x00"}
    forged = {**document, "event_id": str(uuid.uuid4()), "reason": "edited after hashing"}
    append = "SELECT seq, hash FROM querygate.audit_append(%s::json)"
    with psycopg.connect(store.gateway_url, autocommit=True) as conn:
        row = conn.execute(append, (orjson.dumps([claimed]).decode(),)).fetchone()
        assert row is not None and row[0] == 2
        for bad, refusal in [([forged], psycopg.errors.CheckViolation),
                             (document, psycopg.errors.RaiseException),
                             ([], psycopg.errors.RaiseException)]:
            with pytest.raises(refusal):
                conn.execute(append, (orjson.dumps(bad).decode(),))
        count = conn.execute("SELECT count(*) FROM querygate.audit_events").fetchone()
    assert count == (2,)
    assert (await verify(store.gateway_url)).ok


async def test_the_writer_cannot_choose_its_place_in_the_chain(store: Store) -> None:
    await append_many(store, 1)
    with psycopg.connect(store.gateway_url, autocommit=True) as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(
            "INSERT INTO querygate.audit_events (seq, event_id, occurred_at, function_name, "
            "parameters, decision, fields, subjects, duration_us, content_hash, prev_hash, hash) "
            "VALUES (999, gen_random_uuid(), now(), 'f', '{}', 'allowed', '{}', '[]', 0, "
            "sha256('x'), '\\x00', '\\x00')")
    hand_insert = (
        "INSERT INTO querygate.audit_events (seq, event_id, occurred_at, function_name, "
        "parameters, decision, fields, subjects, duration_us, content_hash, prev_hash, hash) "
        "VALUES (999, gen_random_uuid(), now(), 'f', '{}', 'allowed', '{}', '[]', 0, "
        "sha256('x'), '\\x00', '\\x00') RETURNING seq")
    with psycopg.connect(store.admin_url, autocommit=True) as conn:  # by hand, as a superuser
        with pytest.raises(psycopg.errors.CheckViolation, match="audit_events_content"):
            conn.execute(hand_insert)  # its columns do not hash to the content_hash it claims
        conn.execute(UNGUARD)
        row = conn.execute(hand_insert).fetchone()
    assert row == (2,)  # linked by the trigger, whatever was sent
    result = await verify(store.gateway_url)
    assert not result.ok and result.first_bad_seq == 2 and "edited" in (result.problem or "")
    assert result.walk == "deep" and "no audit_events_content constraint" in (result.structure or "")


@pytest.mark.parametrize(("statements", "bad_seq", "words"), [
    ([UNGUARD, "UPDATE querygate.audit_events SET rows_returned = 0 WHERE seq = 3"], 3, "edited"),
    ([UNGUARD, "UPDATE querygate.audit_events SET fields = '{\"iban\": \"allow\"}' WHERE seq = 4"],
     4, "edited"),
    (["DELETE FROM querygate.audit_events WHERE seq = 3"], 4, "jumps"),
    (["UPDATE querygate.audit_events SET seq = seq + 100 WHERE seq IN (2, 3)",
      "UPDATE querygate.audit_events SET seq = 3 WHERE seq = 102",
      "UPDATE querygate.audit_events SET seq = 2 WHERE seq = 103"], 2, "prev_hash"),
    (["DELETE FROM querygate.audit_events WHERE seq >= 5"], 5, "removed"),
])
async def test_tampering_is_found_and_the_first_bad_event_named(
        store: Store, statements: list[str], bad_seq: int, words: str) -> None:
    await append_many(store, 6)
    tamper(store, *statements)
    result = await verify(store.gateway_url)
    assert not result.ok
    assert result.first_bad_seq == bad_seq
    assert words in (result.problem or "")


async def test_audit_store_down_means_audit_unavailable(store: Store) -> None:
    pool = await open_pool(store.gateway_url)
    try:
        with psycopg.connect(store.admin_url, autocommit=True) as conn:
            conn.execute("REVOKE EXECUTE ON FUNCTION querygate.audit_append FROM querygate_gateway")
        with pytest.raises(AuditUnavailable) as caught:
            await audit.append(pool, event(1), timeout_s=5)
        assert caught.value.status == 503
    finally:
        await pool.close()


async def test_a_batch_is_stored_as_given(store: Store) -> None:
    """The writer builds the batch's binary arrays itself: every column round-trips (nulls,
    non-ASCII text, a time before PostgreSQL's epoch, 64-bit durations) and verifies."""
    events = [
        event(1, actor_id=None, actor_email=None, actor_roles=(), reason=None,
              error_code="denied.policy", client_addr=None, subjects=(), fields={},
              parameters={"q": "Zoë ☃ \"quoted\" \\ \u0001", "n": 2**62},
              occurred_at=dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
              duration_us=2**40, context={"on_behalf_of": "usr_é"}, policy_version="pv-1"),
        event(2, actor_roles=("support", "billing"), rows_returned=2**31 - 1),
    ]
    pool = await open_pool(store.gateway_url)
    try:
        async with pool.connection() as conn:
            receipts = await append_batch(conn, events)
            cur = await conn.execute(f"SELECT {COLUMNS} FROM querygate.audit_events "
                                     "ORDER BY seq")
            stored = [audit.StoredEvent(row) for row in await cur.fetchall()]
    finally:
        await pool.close()
    assert [r.seq for r in receipts] == [1, 2]
    assert [s.event for s in stored] == events
    assert [s.content_hash for s in stored] == [e.content_hash() for e in events]
    assert (await verify(store.gateway_url)).ok


async def test_an_event_that_cannot_be_encoded_fails_its_append_closed(store: Store) -> None:
    pool = await open_pool(store.gateway_url)
    try:
        for bad in (event(1, reason="a\x00b"), event(1, parameters={"x": 1.5})):
            with pytest.raises(AuditUnavailable):
                await audit.append(pool, bad, timeout_s=5)
        assert (await audit.append(pool, event(2), timeout_s=5)).seq == 1
    finally:
        await pool.close()
