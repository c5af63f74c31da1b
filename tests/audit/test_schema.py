"""Writer separation on a real server: the gateway appends, the auditor reads, nobody rewrites."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from querygate.provision import AUDITOR_ROLE, setup_database, url_for
from tests.audit.conftest import Log, append, event, verify

pytestmark = pytest.mark.anyio


def _partitions(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c "
                            "ON c.oid = i.inhrelid WHERE i.inhparent = "
                            "'querygate.audit_events'::regclass").fetchall()
    return {r[0] for r in rows}


async def test_setup_is_idempotent_and_makes_month_partitions(log: Log) -> None:
    before = _partitions(log.admin_url)
    done = setup_database(log.admin_url)
    assert _partitions(log.admin_url) == before
    assert "audit_events_default" in before and len(before) >= 14  # default, last month, +12
    assert any("querygate_auditor" in line and "SELECT" in line for line in done)
    assert not any(line.startswith("CREATE ROLE") for line in done)


async def test_events_land_in_their_month_and_index_their_subjects(log: Log) -> None:
    old = dt.datetime(2020, 5, 1, tzinfo=dt.UTC)
    await append(log.gateway_url, [event(1, occurred_at=old, subjects=(
        ("customer", "42"), ("customer", "42"), ("account", "7")))])
    with psycopg.connect(log.admin_url, autocommit=True) as conn:
        assert conn.execute("SELECT querygate.audit_add_month('2026-03-01')").fetchone() == (True,)
        # rows of May 2020 already sit in the default partition: that month is not made
        assert conn.execute("SELECT querygate.audit_add_month('2020-05-01')").fetchone() == (False,)
        await append(log.gateway_url, [event(2)])
        where = conn.execute("SELECT tableoid::regclass::text FROM querygate.audit_events "
                             "ORDER BY seq").fetchall()
        index = conn.execute("SELECT subject_type, subject_id, seq FROM querygate.audit_subjects "
                             "ORDER BY seq, subject_type").fetchall()
    assert where == [("querygate.audit_events_default",), ("querygate.audit_events_y2026m03",)]
    assert index == [("account", "7", 1), ("customer", "42", 1), ("customer", "2", 2)]
    assert (await verify(log)).ok


@pytest.mark.parametrize("statement", [
    "UPDATE querygate.audit_events_default SET reason = 'x'",
    "DELETE FROM querygate.audit_events_default",
    "TRUNCATE querygate.audit_events_default",
    "INSERT INTO querygate.audit_subjects VALUES ('customer', '1', now(), 1)",
    "DELETE FROM querygate.audit_subjects",
    "UPDATE querygate.policy_versions SET rules = '{}'",
    "CREATE TABLE querygate.audit_events_y2099m01 PARTITION OF querygate.audit_events "
    "FOR VALUES FROM ('2099-01-01') TO ('2099-02-01')",
    "SELECT querygate.audit_add_month('2099-01-01')",
])
async def test_the_gateway_role_can_only_append(log: Log, statement: str) -> None:
    await append(log.gateway_url, [event(1)])
    with psycopg.connect(log.gateway_url, autocommit=True) as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement.encode())
    assert (await verify(log)).ok


async def test_the_gateway_may_make_partitions_ahead(log: Log) -> None:
    with psycopg.connect(log.gateway_url, autocommit=True) as conn:
        made = conn.execute("SELECT querygate.audit_ensure_partitions(14)").fetchone()
    assert made == (2,)  # months 13 and 14 ahead (12 were made at setup)


@pytest.mark.parametrize("statement", [
    "TRUNCATE querygate.audit_events_default",
    "TRUNCATE querygate.audit_subjects_default",
    "DELETE FROM querygate.audit_subjects",
    "TRUNCATE querygate.audit_head",
])
async def test_partitions_refuse_a_superuser_in_replica_mode(log: Log, statement: str) -> None:
    await append(log.gateway_url, [event(1)])
    with psycopg.connect(log.admin_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute(statement.encode())


@pytest.mark.parametrize("statement", [
    "INSERT INTO querygate.audit_events (event_id, occurred_at, function_name, parameters, "
    "decision, fields, subjects, duration_us, content_hash, prev_hash, hash, seq) VALUES "
    "(gen_random_uuid(), now(), 'f', '{}', 'allowed', '{}', '[]', 0, sha256('x'), '', '', 0)",
    "UPDATE querygate.audit_events SET reason = 'x'",
    "DELETE FROM querygate.audit_subjects",
    "SELECT querygate.audit_ensure_partitions(3)",
    "SELECT token_hash FROM querygate.tokens",
])
async def test_the_auditor_role_only_reads(log: Log, statement: str) -> None:
    await append(log.gateway_url, [event(1)])
    with psycopg.connect(log.admin_url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS qg_test_carol")
        conn.execute(f"CREATE ROLE qg_test_carol LOGIN IN ROLE {AUDITOR_ROLE}")
    try:
        with psycopg.connect(url_for(log.admin_url, user="qg_test_carol"),
                             autocommit=True) as conn:
            rows = conn.execute("SELECT count(*) FROM querygate.audit_events JOIN "
                                "querygate.audit_subjects USING (seq)").fetchone()
            assert rows == (1,)
            assert conn.execute("SELECT count(*) FROM querygate.users").fetchone() == (0,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement.encode())
    finally:
        with psycopg.connect(log.admin_url, autocommit=True) as conn:
            conn.execute("DROP OWNED BY qg_test_carol")
            conn.execute("DROP ROLE qg_test_carol")
