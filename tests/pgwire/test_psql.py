"""The machine's psql against the front door: calls, meta-commands, errors, reasons, audit."""

from __future__ import annotations

from tests.pgwire.conftest import Front
from tests.pgwire.helpers import events, last_seq, psql


def test_psql_calls_a_function_and_sees_masks_as_masks(front: Front) -> None:
    done = psql(front, "alice", "SELECT * FROM get_customer_by_id(42);")
    assert done.returncode == 0, done.stderr
    assert "Ada Canary" in done.stdout and "****4242" in done.stdout
    assert "DE77424242420000004242" not in done.stdout + done.stderr
    assert "999-42-4242" not in done.stdout and "ssn" not in done.stdout.split("\n")[0]
    assert "NOTICE:  querygate masks applied: date_of_birth (mask.year), iban (mask.last4), " \
           "ssn (omit)" in done.stderr
    assert "(1 row)" in done.stdout


def test_named_arguments_and_the_scalar_form(front: Front) -> None:
    done = psql(front, "alice", "SELECT * FROM get_customer_by_id(customer_id => 42) AS c",
                "SELECT get_customer_by_id(42)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("Ada Canary") == 2


def test_meta_commands_show_only_what_the_caller_may_use(front: Front) -> None:
    done = psql(front, "alice", "\\df", "\\dt", "\\conninfo", "\\l", "\\df get_customer*")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "get_customer_by_id" in out and "customer_id integer" in out
    assert "list_customer_tickets" in out
    # alice (support) may not call billing's functions; nothing of querygate's own schema
    assert "list_customer_payments" not in out and "audit_events" not in out
    assert "append_audit" not in out.lower() and "querygate.users" not in out
    assert "Did not find any relations." in done.stderr  # alice has no ad-hoc SQL: no tables
    assert 'You are connected to database "querygate" as user "alice@example.com"' in out
    filtered = out.split("List of functions")[-1]
    assert "get_customer_by_id" in filtered and "list_customer_orders" not in filtered


def test_an_adhoc_role_sees_the_tables_it_may_read_with_masks_noted(front: Front) -> None:
    done = psql(front, "carol", "\\dt", "SELECT id, ssn, iban FROM customers WHERE id = 42")
    assert done.returncode == 0, done.stderr
    assert "customers" in done.stdout and "audit_events" not in done.stdout
    assert "999-42-4242" not in done.stdout and "h:" in done.stdout
    assert "querygate masks applied" in done.stderr


def test_querygate_functions_lists_calls_with_parameters(front: Front) -> None:
    done = psql(front, "alice", "SELECT * FROM querygate.functions")
    assert done.returncode == 0, done.stderr
    assert "get_customer_by_id" in done.stdout and "customer_id int" in done.stdout
    assert "iban: mask.last4" in done.stdout and "list_customer_payments" not in done.stdout


def test_refusals_carry_sqlstates_and_never_echo_values(front: Front) -> None:
    done = psql(front, "alice", "\\set VERBOSITY verbose",
                "SELECT * FROM customers",
                "SELECT * FROM get_customer_by_id('999-42-4242')",
                "SELECT * FROM no_such_function(1)",
                "SELECT * FROM pg_catalog.pg_authid")
    assert "ERROR:  42501:" in done.stderr
    assert "ERROR:  22023:" in done.stderr
    assert "ERROR:  42883:" in done.stderr
    assert "999-42-4242" not in done.stderr + done.stdout
    assert "rolpassword" not in done.stdout  # never the real catalog


def test_session_statements_are_answered_without_the_database(front: Front) -> None:
    done = psql(front, "alice", "BEGIN", "SET application_name = 'ops-check'",
                "SHOW application_name", "SHOW server_version", "SELECT version()",
                "SELECT current_user, current_database()", "COMMIT", "DISCARD ALL",
                "SET TIME ZONE 'UTC'", "RESET ALL")
    assert done.returncode == 0, done.stderr
    for expected in ("BEGIN", "ops-check", "16.0 (querygate)", "COMMIT", "DISCARD ALL",
                     "alice@example.com", "querygate", "RESET"):
        assert expected in done.stdout, expected


def test_the_reason_and_the_front_door_land_in_the_audit_event(front: Front) -> None:
    before = last_seq(front.demo)
    done = psql(front, "alice", "SET querygate.reason = 'TICKET-77'",
                "SELECT * FROM get_customer_by_id(42)",
                extra=("--set", "ON_ERROR_STOP=1"))
    assert done.returncode == 0, done.stderr
    (event,) = events(front.demo, "seq > %s AND function_name = 'get_customer_by_id'", before)
    assert event["decision"] == "allowed" and event["reason"] == "TICKET-77"
    assert event["actor_email"] == "alice@example.com" and event["rows_returned"] == 1
    assert event["context"]["client"] == "postgres"
    assert event["context"]["application"] == "psql"
    assert event["client_addr"] == "127.0.0.1"


def test_a_wrong_token_or_another_users_name_is_refused(front: Front) -> None:
    wrong = psql(front, "alice", "SELECT 1", token="qg_not-a-token")
    assert wrong.returncode != 0
    assert 'password authentication failed for user "alice@example.com"' in wrong.stderr
    other = psql(front, "alice", "SELECT 1", token=front.demo.token("bob"))
    assert other.returncode != 0 and "password authentication failed" in other.stderr


def _cells(out: str) -> list[list[str]]:
    """psql's aligned output as rows of stripped cells (lines without a ``|`` left out)."""
    return [[cell.strip() for cell in line.split("|")] for line in out.splitlines() if "|" in line]


CUSTOMER_COLUMNS = ["id", "full_name", "email", "phone", "iban", "ssn", "date_of_birth",
                    "country", "plan_tier", "created_at"]


def test_describe_shows_one_tables_columns_types_and_masks_to_an_adhoc_role(front: Front) -> None:
    plain = psql(front, "carol", "\\d customers")
    assert plain.returncode == 0, plain.stderr
    assert 'Table "public.customers"' in plain.stdout
    rows = _cells(plain.stdout)
    assert rows[0] == ["Column", "Type", "Collation", "Nullable", "Default"]
    assert [r[0] for r in rows[1:]] == CUSTOMER_COLUMNS  # this table's, and no other's
    assert ["id", "bigint", "", "", ""] in rows
    assert ["created_at", "timestamp with time zone", "", "", ""] in rows
    assert "Inherits" not in plain.stdout and "Publications" not in plain.stdout

    verbose = psql(front, "carol", "\\d+ customers")
    assert verbose.returncode == 0, verbose.stderr
    described = {r[0]: r for r in _cells(verbose.stdout)}
    assert described["iban"][1] == "text" and described["iban"][-1] == "masked: mask.last4"
    assert described["ssn"][-1] == "masked: mask.hash"
    assert described["full_name"][-1] == "" and described["id"][5] == "plain"
    assert "999-42-4242" not in verbose.stdout


def test_describe_views_and_schemas_and_nothing_of_querygate_itself(front: Front) -> None:
    done = psql(front, "carol", "\\dv", "\\dn", "\\d customer_overview", "\\d audit_events",
                "\\d querygate.users")
    assert "ERROR" not in done.stderr  # psql's exit status is that of the last, not-found one
    rows = _cells(done.stdout)
    assert ["public", "customer_overview", "view", "querygate"] in rows
    assert ["public", "querygate"] in rows  # \dn: the one schema, not querygate's own
    assert 'View "public.customer_overview"' in done.stdout
    assert ["order_count", "bigint", "", "", ""] in rows
    assert "View definition" not in done.stdout  # never the view's SQL
    assert 'Did not find any relation named "audit_events".' in done.stderr
    assert 'Did not find any relation named "querygate.users".' in done.stderr


def test_describe_finds_no_table_for_a_role_without_adhoc_sql(front: Front) -> None:
    done = psql(front, "alice", "\\d customers", "\\d+ customers", "\\dv", "\\d")
    assert "ERROR" not in done.stderr
    assert 'Did not find any relation named "customers".' in done.stderr
    assert done.stderr.count("Did not find any relation") == 4
    assert done.stdout == ""
