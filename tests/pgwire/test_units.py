"""The front door's pieces without a server: statements, values on the wire, errors, banner."""

from __future__ import annotations

import asyncio
import datetime as dt
import struct
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from querygate import errors
from querygate.demo import banner
from querygate.pgwire import PostgresConfig, sqlstate_of
from querygate.pgwire import _codec as wire
from querygate.pgwire import _sql as sql
from querygate.pgwire import _types as t


def _call(text: str) -> sql.Call | None:
    return sql.parse_call(sql.tokenize(text))


def test_function_calls_in_every_form() -> None:
    assert _call("SELECT * FROM get_customer_by_id(42)") == sql.Call(
        "get_customer_by_id", ("42",), ())
    assert _call("select * from public.get_customer_by_id($1::int) as c") == sql.Call(
        "get_customer_by_id", (sql.Param(1),), ())
    assert _call("SELECT get_x(customer_id => -4, tags => ARRAY['a', NULL], ok => true)") == \
        sql.Call("get_x", (), (("customer_id", "-4"), ("tags", ["a", None]), ("ok", True)))
    assert _call('SELECT a, "B" FROM f(1) AS x') == sql.Call("f", ("1",), (), ("a", "B"))
    assert _call("SELECT * FROM f('it''s', E'a\\nb', $$x$$)") == sql.Call(
        "f", ("it's", "a\nb", "x"), ())
    for refused in ("SELECT * FROM f(1) WHERE true", "SELECT * FROM f(g(1))",
                    "SELECT * FROM pg_catalog.f(1)", "SELECT * FROM f(a => 1, 2)",
                    "SELECT a + 1 FROM f(1)", "SELECT a, FROM f(1)", "DELETE FROM f(1)"):
        assert _call(refused) is None, refused


def test_statements_split_on_semicolons_outside_quotes_and_comments() -> None:
    text = "SET a = 'x;y'; /* ; */ SELECT 1 -- ;\n; SELECT $q$;$q$"
    assert [s for s, _ in sql.split(text)] == ["SET a = 'x;y'", "SELECT 1", "SELECT $q$;$q$"]
    with pytest.raises(sql.SqlSyntaxError):
        sql.split("SELECT 'unterminated")
    with pytest.raises(sql.SqlSyntaxError):
        sql.split("SELECT 1 /* open")


def test_session_statements() -> None:
    def parse(text: str) -> sql.Session | None:
        return sql.parse_session(sql.tokenize(text))

    assert parse("SET querygate.reason = 'TICKET-1'") == sql.Session(
        "set", "SET", "querygate.reason", "TICKET-1")
    assert parse("SET SESSION TIME ZONE 'UTC'") == sql.Session("set", "SET", "timezone", "UTC")
    assert parse("set extra_float_digits to 3") == sql.Session(
        "set", "SET", "extra_float_digits", "3")
    assert parse("BEGIN READ ONLY") == sql.Session("begin", "BEGIN")
    assert parse("ROLLBACK TO SAVEPOINT s") == sql.Session("rollback_to", "ROLLBACK")
    assert parse("DEALLOCATE PREPARE s1") == sql.Session("deallocate", "DEALLOCATE", "s1")
    assert parse("SELECT set_config('a', 'b', false)") is None
    assert parse("SET a.b.c = 1") is None  # not a setting name: never answered as SET


@given(st.decimals(allow_nan=False, allow_infinity=False, places=None,
                   min_value=Decimal("-1e30"), max_value=Decimal("1e30")))
def test_numeric_binary_round_trips(value: Decimal) -> None:
    assert Decimal(t.decode_param(t.encode_binary(value, t.NUMERIC), 1, t.NUMERIC)) == value


@given(st.lists(st.one_of(st.none(), st.text(max_size=8).filter(lambda s: "\x00" not in s)),
                max_size=20))
def test_text_arrays_round_trip(values: list[str | None]) -> None:
    assert t.parse_array(t.encode_text(values).decode()) == values
    assert t.decode_param(t.encode_binary(values, t.ARRAY_OF[t.TEXT]), 1,
                          t.ARRAY_OF[t.TEXT]) == values


def test_binary_parameters_of_each_declared_type() -> None:
    moment = dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.UTC)
    cases = [(t.INT4, 42, 42), (t.INT8, -7, -7), (t.BOOL, True, True),
             (t.DATE, dt.date(2026, 3, 1), "2026-03-01"),
             (t.TIMESTAMPTZ, moment, "2026-03-01T12:30:00+00:00"),
             (t.NUMERIC, Decimal("12.50"), "12.50"),
             (t.UUID, uuid.UUID(int=42), "00000000-0000-0000-0000-00000000002a"),
             (t.ARRAY_OF[t.INT4], [1, None, 3], [1, None, 3])]
    for oid, value, expected in cases:
        assert t.decode_param(t.encode_binary(value, oid), 1, oid) == expected
    with pytest.raises(t.BadValue):
        t.decode_param(b"\x00\x01", 1, t.INT4)  # two bytes for a four-byte int
    with pytest.raises(t.BadValue):
        t.decode_param(b"\xff", 0, t.TEXT)  # not UTF-8
    with pytest.raises(t.BadValue):
        t.parse_array("{{1},{2}}")


def test_every_error_class_has_its_sqlstate() -> None:
    assert sqlstate_of(errors.NotAuthenticated("x")) == "28P01"
    assert sqlstate_of(errors.PolicyDenied("r", "x")) == "42501"
    assert sqlstate_of(errors.BadParameters("x")) == "22023"
    assert sqlstate_of(errors.LimitExceeded("x")) == "53400"
    assert sqlstate_of(errors.StatementTimeout("x")) == "57014"
    assert sqlstate_of(errors.AuditUnavailable("x")) == "57P03"
    assert sqlstate_of(errors.UpstreamError("x", sqlstate="22012")) == "22012"
    assert sqlstate_of(errors.QuerygateError("x")) == "XX000"


def test_a_message_longer_than_the_limit_is_refused_before_it_is_read() -> None:
    async def go() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(b"Q" + struct.pack("!i", 1 << 30))  # the body never comes
        with pytest.raises(wire.ProtocolViolation, match="over the limit"):
            await wire.read_message(reader, 1024)

    asyncio.run(go())


def test_the_demo_banner_prints_a_psql_line_per_user() -> None:
    tokens = {e: f"qg_{e[:3]}" for e in ("alice@example.com", "bob@example.com",
                                         "carol@example.com", "dave@example.com")}
    lines = banner(Path("/p"), "127.0.0.1", 8080, tokens,
                   postgres=PostgresConfig("127.0.0.1", 6432))
    psql = [line for line in lines if line.startswith("  psql ")]
    assert psql[0] == ("  psql 'host=127.0.0.1 port=6432 dbname=querygate "
                       "user=alice@example.com password=qg_ali'")
    assert len(psql) == 4
    assert not any("psql" in line for line in banner(Path("/p"), "127.0.0.1", 8080, tokens))
