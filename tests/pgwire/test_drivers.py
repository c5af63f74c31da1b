"""Python drivers nobody here wrote: psycopg 3 (simple, extended, prepared, binary), asyncpg;
cancel, revocation mid-session, audit events, limits."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import asyncpg
import psycopg
import pytest
from psycopg import errors as pgerr

from querygate.demo import CANARIES
from querygate.pgwire import PostgresConfig
from tests.demo_env import Demo
from tests.pgwire.conftest import Front, start_front, stop_front, with_limits
from tests.pgwire.helpers import events, last_seq, new_user, revoke


def test_psycopg_simple_extended_prepared_and_binary(front: Front) -> None:
    with front.connect("alice") as conn:
        cur = conn.cursor()
        cur.execute("SELECT * FROM get_customer_by_id(42)")  # no parameters: simple protocol
        simple = cur.fetchone()
        cur.execute("SELECT * FROM get_customer_by_id(%s)", (42,))  # extended, text
        extended = cur.fetchone()
        assert cur.description is not None
        types = {c.name: c.type_code for c in cur.description}
        cur.execute("SELECT * FROM get_customer_by_id(%b)", (42,))  # a binary parameter
        binary_param = cur.fetchone()
        for n in (42, 43, 42):
            cur.execute("SELECT * FROM get_customer_by_id(%s)", (n,), prepare=True)
        prepared = cur.fetchone()
        bcur = conn.cursor(binary=True)  # binary results
        bcur.execute("SELECT * FROM get_customer_by_id(customer_id => %s)", (42,))
        binary_rows = bcur.fetchone()
    assert simple == extended == binary_param == prepared == binary_rows
    assert simple is not None and simple[0] == 42 and simple[4] == "****4242"
    assert isinstance(simple[-1], dt.datetime) and simple[-1].tzinfo is not None
    assert types["id"] == 20 and types["created_at"] == 1184  # real types for clear columns
    assert types["iban"] == 25 and types["date_of_birth"] == 25  # masked columns are text


def test_selected_columns_of_a_function_come_back_in_the_order_asked(front: Front) -> None:
    with front.connect("alice") as conn:
        cur = conn.cursor()
        cur.execute("SELECT iban, id FROM get_customer_by_id(42)")  # simple protocol
        simple = cur.fetchall()
        cur.execute("SELECT iban, id FROM get_customer_by_id(%s) AS c", (42,))  # extended
        assert cur.description is not None
        described = [(c.name, c.type_code) for c in cur.description]
        extended = cur.fetchall()
        with pytest.raises(pgerr.UndefinedColumn) as refused:
            cur.execute("SELECT id, ssn FROM get_customer_by_id(42)")  # omitted for support
    assert simple == extended == [("****4242", 42)]
    assert described == [("iban", 25), ("id", 20)]
    assert "ssn" in str(refused.value) and CANARIES["ssn"] not in str(refused.value)


def test_typed_parameters_in_both_formats(front: Front) -> None:
    with front.connect("bob") as conn:
        cur = conn.cursor()
        since, until = dt.date(2020, 1, 1), dt.date(2030, 1, 1)
        cur.execute("SELECT * FROM customers_created_between(%s, %s)", (since, until))
        text_rows = cur.fetchall()
        cur.execute("SELECT * FROM customers_created_between(%b, %b)", (since, until))
        binary_rows = cur.fetchall()
        assert text_rows and text_rows == binary_rows
        cur.execute("SELECT * FROM list_customer_payments(%b)", (42,))
        payments = cur.fetchall()
        assert payments and any(isinstance(v, Decimal) for v in payments[0])


def test_bad_parameters_are_22023_and_echo_nothing(front: Front) -> None:
    with front.connect("alice") as conn, pytest.raises(pgerr.InvalidParameterValue) as caught:
        conn.execute("SELECT * FROM get_customer_by_id(%s)", ("999-42-4242",))
    assert caught.value.sqlstate == "22023" and "999-42-4242" not in str(caught.value)
    with front.connect("alice") as conn, pytest.raises(pgerr.InsufficientPrivilege):
        conn.execute("SELECT * FROM list_customer_payments(%s)", (42,))


def test_transactions_and_errors_inside_them(front: Front) -> None:
    with front.connect("alice") as conn:
        conn.autocommit = False
        assert conn.execute("SELECT * FROM get_customer_by_id(42)").fetchone() is not None
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        with pytest.raises(pgerr.InsufficientPrivilege):
            conn.execute("SELECT * FROM customers")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        with pytest.raises(pgerr.InFailedSqlTransaction):
            conn.execute("SELECT * FROM get_customer_by_id(42)")
        conn.rollback()
        assert conn.execute("SELECT * FROM get_customer_by_id(42)").fetchone() is not None
        conn.commit()


def test_asyncpg_binary_protocol(front: Front) -> None:
    async def go() -> tuple[list[asyncpg.Record], list[asyncpg.Record], str, int]:
        conn = await asyncpg.connect(host="127.0.0.1", port=front.port, ssl=False,
                                     user="alice@example.com", password=front.demo.token("alice"),
                                     database="querygate")
        try:
            customer = await conn.fetch("SELECT * FROM get_customer_by_id($1)", 42)
            orders = await conn.fetch("SELECT * FROM list_customer_orders($1)", 42)
            statement = await conn.prepare("SELECT * FROM get_customer_by_id($1)")
            again = await statement.fetchrow(42)
            assert again is not None and again["id"] == 42
            version = await conn.fetchval("SELECT version()")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch("SELECT * FROM customers")
            count = len(await conn.fetch("SELECT * FROM querygate.functions"))
            return customer, orders, str(version), count
        finally:
            await conn.close()

    customer, orders, version, count = asyncio.run(go())
    assert customer[0]["full_name"] == "Ada Canary" and customer[0]["iban"] == "****4242"
    assert len(orders) >= 3 and isinstance(orders[0]["amount"], Decimal)
    assert isinstance(orders[0]["created_at"], dt.datetime)
    assert "querygate" in version and count == 7


def test_revocation_holds_on_the_next_statement_of_an_open_session(front: Front) -> None:
    email = f"erin-{uuid.uuid4().hex[:6]}@example.com"
    token = new_user(front.demo, email, ("support",))
    dsn = front.dsn("alice", token=token).replace("alice@example.com", email)
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT * FROM get_customer_by_id(42)").fetchone() is not None
        revoke(front.demo, email)
        with pytest.raises(psycopg.Error) as caught:
            conn.execute("SELECT * FROM get_customer_by_id(42)").fetchall()
        assert caught.value.sqlstate == "28P01"
        assert conn.closed  # the session ends with its credential
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn).close()


def test_cancel_request_stops_the_running_query_and_is_audited(front: Front) -> None:
    before = last_seq(front.demo)
    with psycopg.connect(front.demo.admin_url) as lock, front.connect("alice") as conn:
        lock.execute("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")  # the call will wait
        # cancel_safe: libpq's blocking PQcancel would hold the GIL, and the server under
        # test runs in a thread of this process
        timer = threading.Timer(0.5, conn.cancel_safe)
        timer.start()
        started = time.monotonic()
        with pytest.raises(pgerr.QueryCanceled) as caught:
            conn.execute("SELECT * FROM get_customer_by_id(%s)", (42,))
        timer.join()
        assert time.monotonic() - started < 4  # well before statement_timeout (5 s)
        assert caught.value.sqlstate == "57014"
        lock.rollback()
        assert conn.execute("SELECT * FROM get_customer_by_id(42)").fetchone() is not None
    cancelled = events(front.demo, "seq > %s AND error_code = 'client_closed'", before)
    assert cancelled and cancelled[0]["context"]["client"] == "postgres"


def test_a_guessed_cancel_key_cancels_nothing(front: Front) -> None:
    with psycopg.connect(front.demo.admin_url) as lock, front.connect("alice") as conn:
        lock.execute("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
        pid = conn.info.backend_pid
        rows: list[object] = []
        worker = threading.Thread(target=lambda: rows.extend(
            conn.execute("SELECT * FROM get_customer_by_id(42)").fetchall()))
        worker.start()
        time.sleep(0.3)
        for key in (0, 1, 2**31 - 1, 123456789):  # guesses at the key, with the right pid
            with socket.create_connection(("127.0.0.1", front.port)) as sock:
                sock.sendall(struct.pack("!iiii", 16, 80877102, pid, key))
                assert sock.recv(1) == b""  # the server answers a cancel request by closing
        time.sleep(0.3)
        lock.rollback()
        worker.join(10)
        assert len(rows) == 1  # the query ran to its end


def test_every_statement_is_audited_with_client_postgres(front: Front) -> None:
    before = last_seq(front.demo)
    with front.connect("alice", application_name="billing-report") as conn:
        conn.execute("SELECT * FROM get_customer_by_id(%s)", (42,)).fetchall()
        with pytest.raises(pgerr.InsufficientPrivilege):
            conn.execute("SELECT * FROM list_customer_payments(42)")
    found = events(front.demo, "seq > %s AND actor_email = 'alice@example.com'", before)
    assert [e["decision"] for e in found] == ["allowed", "denied"]
    assert all(e["context"]["client"] == "postgres" for e in found)
    assert all(e["context"]["application"] == "billing-report" for e in found)


def test_no_canary_byte_reaches_any_client_for_a_masked_column(front: Front) -> None:
    """Every byte psycopg received, in text and binary, for callers whose rules mask them."""
    masked = [CANARIES["iban"], CANARIES["ssn"], CANARIES["account_iban"]]
    statements = {
        "alice": ("SELECT * FROM get_customer_by_id(%s)", (42,),
                  [*masked, CANARIES["date_of_birth"]]),
        "carol": ("SELECT * FROM get_customer_by_id(%s)", (42,), masked),
        "carol ": ("SELECT id, iban, ssn, upper(iban) AS loud, iban || '' AS plain "
                   "FROM customers WHERE id = 42", (), masked),
    }
    for name, (text, params, leaks) in statements.items():
        received: list[bytes] = []
        with front.connect(name.strip()) as conn:
            for binary in (False, True):
                cur = conn.cursor(binary=binary)
                cur.execute(text, params)
                result = cur.pgresult
                assert result is not None and result.ntuples == 1
                received += [result.get_value(0, i) or b"" for i in range(result.nfields)]
        blob = b"\x00".join(received)
        assert b"****4242" in blob
        for canary in leaks:
            assert canary.encode() not in blob, (name, canary)


def test_connection_limits_per_identity_and_in_total(demo: Demo) -> None:
    limited = start_front(demo, with_limits(PostgresConfig("127.0.0.1", 0),
                                            max_connections_per_user=2, max_connections=4))
    opened: list[psycopg.Connection[Any]] = []
    try:
        opened += [limited.connect("alice"), limited.connect("alice")]
        with pytest.raises(psycopg.OperationalError, match="too many connections for role"):
            limited.connect("alice")
        opened += [limited.connect("bob"), limited.connect("carol")]
        with pytest.raises(psycopg.OperationalError, match="too many clients"):
            limited.connect("dave")
        opened.pop().close()
        deadline = time.monotonic() + 5
        while limited.server.connections >= 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        opened.append(limited.connect("dave"))  # a slot freed is a slot again
        assert limited.server.refused == 2
    finally:
        for conn in opened:
            conn.close()
        stop_front(limited)


def test_a_client_that_hangs_up_has_its_query_cancelled(front: Front) -> None:
    before = last_seq(front.demo)

    def waiting(admin: psycopg.Connection[Any]) -> int:
        row = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                            "'Lock' AND query LIKE '%customers%'").fetchone()
        return int(row[0]) if row else 0

    def within(seconds: float, done: Callable[[], bool]) -> bool:
        deadline = time.monotonic() + seconds
        while not done() and time.monotonic() < deadline:
            time.sleep(0.05)
        return done()

    # pg_stat_activity is read from a connection of its own: inside a transaction it is a
    # snapshot that would never change
    with psycopg.connect(front.demo.admin_url, autocommit=True) as watch, \
            psycopg.connect(front.demo.admin_url, autocommit=True) as admin, admin.transaction():
        admin.execute("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
        conn = front.connect("alice")
        conn.pgconn.send_query(b"SELECT * FROM get_customer_by_id(42)")
        assert within(3, lambda: waiting(watch) == 1)  # the call waits on the lock
        conn.close()  # and its client hangs up
        # cancelled well before statement_timeout (5 s) would have ended it
        assert within(2, lambda: waiting(watch) == 0)
    assert within(5, lambda: bool(events(front.demo, "seq > %s AND error_code = 'client_closed'",
                                         before)))
    (gone,) = events(front.demo, "seq > %s AND function_name = 'get_customer_by_id'", before)
    assert gone["actor_email"] == "alice@example.com" and gone["error_code"] == "client_closed"


def test_catalog_queries_with_bound_names_and_stars(front: Front) -> None:
    """DBeaver's kind of catalog query: ``t.*`` and a bound name, answered from querygate."""
    query = "SELECT db.oid, db.* FROM pg_catalog.pg_database db WHERE datname = %s"
    with front.connect("alice") as conn:
        cur = conn.execute(query, ("querygate",))
        assert cur.description is not None
        columns = [c.name for c in cur.description]
        rows = cur.fetchall()
        assert "datname" in columns and len(rows) == 1
        assert rows[0][columns.index("datname")] == "querygate"
        assert conn.execute(query, ("postgres",)).fetchall() == []  # not the real catalog
        procs = conn.execute("SELECT proname FROM pg_catalog.pg_proc WHERE proname LIKE %s",
                             ("get\\_%",)).fetchall()
        assert sorted(procs) == [("get_customer_by_id",), ("get_order_by_id",), ("get_ticket",)]
        with pytest.raises(pgerr.FeatureNotSupported):
            conn.execute("SELECT FROM pg_catalog.pg_class WHERE (((")


def test_asyncpg_prepares_ad_hoc_sql_and_each_run_is_audited(front: Front) -> None:
    """asyncpg describes a statement before it binds it: ad-hoc SQL runs at that point, and
    the first execution takes that result; every execution has its own event."""
    before = last_seq(front.demo)

    async def go() -> list[object]:
        conn = await asyncpg.connect(host="127.0.0.1", port=front.port, ssl=False,
                                     user="carol@example.com", password=front.demo.token("carol"),
                                     database="querygate")
        try:
            statement = await conn.prepare("SELECT id, ssn, iban FROM customers WHERE id = 42")
            return [await statement.fetchrow(), await statement.fetchrow()]
        finally:
            await conn.close()

    first, second = asyncio.run(go())
    assert first == second and first is not None
    assert first["ssn"].startswith("h:") and first["iban"] == "****4242"  # type: ignore[index]
    runs = events(front.demo, "seq > %s AND actor_email = 'carol@example.com'", before)
    assert [e["decision"] for e in runs] == ["allowed", "allowed"]
    assert all(e["context"]["client"] == "postgres" for e in runs)


def test_catalog_joins_with_relations_querygate_has_no_rows_of_are_empty(front: Front) -> None:
    """A JDBC client's primary keys (a join with ``pg_index``): none, never every column."""
    columns = ("SELECT a.attname FROM pg_catalog.pg_class ct "
               "JOIN pg_catalog.pg_attribute a ON (a.attrelid = ct.oid) WHERE ct.relname = %s")
    keys = columns.replace("WHERE", "JOIN (SELECT i.indrelid, i.indkey FROM pg_catalog.pg_index i)"
                                    " i ON (i.indrelid = ct.oid) WHERE")
    with front.connect("carol") as conn:
        assert ("ssn",) in conn.execute(columns, ("customers",)).fetchall()
        assert conn.execute(keys, ("customers",)).fetchall() == []
        inherits = ("SELECT c.oid FROM pg_catalog.pg_class c, pg_catalog.pg_inherits i "
                    "WHERE c.oid = i.inhparent")
        assert conn.execute(inherits).fetchall() == []
