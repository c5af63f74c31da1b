"""The database side of the promise: the ad-hoc role reads nothing but masked views, and a
connection an ad-hoc statement changed is never handed to the next caller."""

from __future__ import annotations

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from querygate import adhoc
from querygate.gateway import Gateway
from tests.adhoc.conftest import CANARIES, RedTeam

pytestmark = pytest.mark.anyio


async def test_the_adhoc_role_can_read_no_table_no_key_and_no_statistics(
        redteam: RedTeam, served: object) -> None:
    with psycopg.connect(redteam.admin_url) as conn:
        privileges = conn.execute(
            "SELECT has_table_privilege('querygate_adhoc', 'public.staff', 'SELECT'), "
            "has_any_column_privilege('querygate_adhoc', 'public.staff', 'SELECT'), "
            "has_schema_privilege('querygate_adhoc', 'querygate', 'USAGE'), "
            "has_table_privilege('querygate_adhoc', 'querygate_masked.mask_keys', 'SELECT'), "
            "has_table_privilege('querygate_adhoc', 'querygate_masked.\"public.staff\"', "
            "'SELECT')").fetchone()
        assert privileges == (False, False, False, False, True)
        columns = {r[0] for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = "
            "'querygate_masked.\"public.staff\"'::regclass AND attnum > 0")}
        assert "salary" not in columns and "ssn" not in columns  # deny; never in clear
        assert {"ssn#mask.full", "ssn#mask.hash", "iban#mask.last4", "iban"} <= columns
        conn.execute("SET ROLE querygate_adhoc")
        stats = conn.execute("SELECT count(*) FROM pg_stats WHERE tablename = 'staff'").fetchone()
        assert stats == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT ssn FROM public.staff")


async def test_a_connection_left_changed_is_closed_not_reused(served: tuple[Gateway, object],
                                                              ) -> None:
    gateway, _ = served
    async with gateway.query_pool.connection() as conn:
        await adhoc.run_adhoc(conn, "SELECT 1", max_rows=10, label=None)
        assert not conn.closed
        await conn.execute("SELECT pg_advisory_lock(4242)")  # as a leaked lock would look
        await adhoc.run_adhoc(conn, "SELECT 1", max_rows=10, label=None)
        assert conn.closed


async def test_a_refused_or_failing_statement_leaves_the_connection_clean(
        served: tuple[Gateway, httpx.AsyncClient], redteam: RedTeam) -> None:
    gateway, client = served
    for statement in ("SELECT 1/0", "SELECT ssn::int FROM staff", "SELECT pg_sleep(0)"):
        await client.post("/v1/sql", json={"sql": statement},
                          headers={"Authorization": f"Bearer {redteam.analyst}"})
    async with gateway.query_pool.connection() as conn:
        row = await (await conn.execute(
            "SELECT current_user = session_user, current_setting('transaction_read_only'), "
            "(SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() "
            "AND locktype = 'advisory')")).fetchone()
    assert row == (True, "on", 0)


# Expressions an attacker might compose over the protected columns.
_COLUMNS = st.sampled_from(["ssn", "iban", "email", "born::text", "name"])
_UNARY = st.sampled_from(["upper({})", "reverse({})", "length({})::text", "md5({})",
                          "substr({}, 2, 5)", "split_part({}, '@', 1)", "{} || 'x'",
                          "coalesce(nullif({}, '1'), 'n')", "left({}, 3)", "right({}, 6)",
                          "translate({}, '0123456789', 'abcdefghij')", "btrim({}, '*')"])


@st.composite
def _expressions(draw: st.DrawFn) -> str:
    expression = draw(_COLUMNS)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        expression = draw(_UNARY).format(expression)
    return expression


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(expression=_expressions(), literal=st.sampled_from(["5", "GB", "zora", "1127", "x", ""]))
async def test_any_expression_over_masked_columns_answers_alike_for_both_people(
        served: tuple[Gateway, httpx.AsyncClient], redteam: RedTeam, expression: str,
        literal: str) -> None:
    _, client = served
    answers = []
    for who in (7, 8):
        statement = (f"SELECT {expression} AS e, CASE WHEN {expression} LIKE '%{literal}%' "
                     f"THEN 1/0 ELSE 1 END AS boom FROM staff WHERE id = {who}")
        response = await client.post("/v1/sql", json={"sql": statement},
                                     headers={"Authorization": f"Bearer {redteam.analyst}"})
        assert response.status_code < 500, response.text
        for canary in CANARIES:
            assert canary not in response.text
        body = response.json()
        body.pop("audit_id", None)
        body.pop("receipt", None)
        answers.append((response.status_code, body))
    assert answers[0] == answers[1]
