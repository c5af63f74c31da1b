"""Reading pgAudit records in each log format, and reconciling them, without a server: the
shapes PostgreSQL writes (multi-line statements, object audit, substatements, no object names)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from querygate.cli import main
from querygate.detect import audit_records, last_seen, log_format
from querygate.errors import LogFormatError
from querygate.exposure import Functions, GatewayEvent, reconcile
from querygate.exposure._reconcile import as_sent, fingerprint

T0 = dt.datetime(2026, 3, 2, 9, 15, tzinfo=dt.UTC)
PREFIX = "2026-03-02 09:15:{s} UTC [{pid}] {role}@prod app={app} client=10.0.0.{host} LOG:  "
GET = "SELECT id, email FROM customers WHERE id = %(customer_id)s"


def stderr(second: str, role: str, body: str, pid: int = 7, app: str = "psql",
           host: int = 5) -> str:
    return PREFIX.format(s=second, pid=pid, role=role, app=app, host=host) + "AUDIT: " + body


LOG = "\n".join([
    "2026-03-02 09:15:00.000 UTC [1] @ app= client= LOG:  database system is ready",
    stderr("01.000", "analyst", 'SESSION,1,1,READ,SELECT,TABLE,public.customers,"SELECT ssn\n'
           '    FROM customers, orders\n    WHERE customers.id = 1",<none>'),
    stderr("01.000", "analyst", 'SESSION,1,1,READ,SELECT,TABLE,public.orders,"SELECT ssn\n'
           '    FROM customers, orders\n    WHERE customers.id = 1",<none>'),
    stderr("01.000", "analyst", 'OBJECT,1,1,READ,SELECT,TABLE,public.customers,"SELECT ssn\n'
           '    FROM customers, orders\n    WHERE customers.id = 1",<none>'),
    stderr("02.000", "analyst", "SESSION,2,1,FUNCTION,EXECUTE,FUNCTION,public.ssn_of,"
           "SELECT ssn_of(3),<none>"),
    stderr("02.000", "analyst", "SESSION,2,2,READ,SELECT,TABLE,public.customers,"
           "SELECT ssn FROM customers WHERE id = cid,<none>"),
    stderr("03.000", "analyst", "SESSION,3,1,READ,SELECT,TABLE,public.notes,"
           "SELECT * FROM notes,<none>"),
    stderr("04.000", "legacy", "SESSION,1,1,READ,SELECT,,,SELECT email FROM customers,<none>",
           pid=8),
    stderr("05.100", "querygate_gateway", "SESSION,1,1,READ,SELECT,TABLE,public.customers,"
           '"SELECT id, email FROM customers WHERE id = $1",42', pid=9, app="querygate"),
    stderr("05.900", "querygate_gateway", "SESSION,2,1,READ,SELECT,TABLE,public.customers,"
           '"SELECT id, email FROM customers WHERE id = 43",<none>', pid=9, app="querygate"),
    "2026-03-02 09:15:06.000 UTC [10] ci@prod app=deploy client=10.0.0.9 LOG:  connection "
    "authorized: user=ci database=prod application_name=deploy",
]) + "\n"


def reconciled(text: str, events: list[GatewayEvent]):  # type: ignore[no-untyped-def]
    return reconcile(audit_records(text.splitlines(keepends=True)),
                     classified=["public.customers", "public.orders"],
                     gateway_role="querygate_gateway",
                     functions=Functions({"get_customer": GET}), events=events,
                     tolerance=dt.timedelta(milliseconds=100))


def event(start: float, ms: float, function: str = "get_customer") -> GatewayEvent:
    return GatewayEvent("1", T0 + dt.timedelta(seconds=start), dt.timedelta(milliseconds=ms),
                        function, "usr_1")


def test_records_merge_objects_object_audit_and_substatements() -> None:
    result = reconciled(LOG, [event(5.05, 100)])
    found = [(f.rule, f.statement.role, sorted(f.statement.tables)) for f in result.findings]
    assert found == [
        ("bypass.role", "analyst", ["public.customers", "public.orders"]),
        ("bypass.role", "analyst", ["public.customers"]),  # inside a function it called
        ("bypass.role", "legacy", ["public.customers"]),  # no object names: read from the text
        ("bypass.unaudited", "querygate_gateway", ["public.customers"]),  # 2nd: no event left
    ]
    assert result.parsed == 1 and result.matched == 1 and result.statements == 5
    first = result.findings[0].statement.first
    assert first.client == "10.0.0.5" and first.application == "psql"
    assert "\n    FROM customers, orders" in first.statement


def test_one_event_vouches_for_one_statement_in_its_window() -> None:
    assert len(reconciled(LOG, [event(5.05, 100), event(5.85, 100)]).findings) == 3
    late = reconciled(LOG, [event(5.05, 100), event(6.5, 100)])
    assert [f.rule for f in late.findings][-1] == "bypass.unaudited"
    other = reconciled(LOG, [event(5.05, 100, "search"), event(5.85, 100, "search")])
    assert [f.rule for f in other.findings].count("bypass.unaudited") == 2


def test_csvlog_and_jsonlog_read_the_same_records() -> None:
    body = 'AUDIT: SESSION,1,1,READ,SELECT,TABLE,public.customers,"SELECT a, b FROM customers",<none>'
    csv_line = ('2026-03-02 09:15:01.000 UTC,"analyst","prod",77,"10.0.0.5:5123",65e2.4d,1,'
                '"SELECT",2026-03-02 09:14:00 UTC,3/7,0,LOG,00000,"'
                + body.replace('"', '""') + '",,,,,,,,,"psql","client backend",,0\n')
    json_line = json.dumps({"timestamp": "2026-03-02 09:15:01.000 UTC", "user": "analyst",
                            "dbname": "prod", "pid": 77, "remote_host": "10.0.0.5",
                            "session_id": "65e2.4d", "application_name": "psql",
                            "error_severity": "LOG", "message": body}) + "\n"
    for text, fmt in ((csv_line, "csvlog"), (json_line, "jsonlog")):
        assert log_format(text) == fmt
        (rec,) = audit_records([text])
        assert (rec.role, rec.database, rec.session, rec.client, rec.application) == (
            "analyst", "prod", "65e2.4d", "10.0.0.5", "psql")
        assert (rec.command, rec.object_name, rec.statement) == (
            "SELECT", "public.customers", "SELECT a, b FROM customers")
        assert rec.at == T0 + dt.timedelta(seconds=1)


def test_unknown_formats_and_missing_roles_are_named() -> None:
    with pytest.raises(LogFormatError, match="unknown log format"):
        list(audit_records(["Mar  2 09:15:01 db postgres[77]: LOG: AUDIT: x\n"]))
    with pytest.raises(LogFormatError, match="names no role"):
        list(audit_records(["2026-03-02 09:15:01 UTC [77] LOG:  AUDIT: SESSION,1,1,READ,"
                            "SELECT,,,SELECT 1,<none>\n"]))
    with pytest.raises(LogFormatError, match="line 2 is not JSON"):
        list(audit_records(['{"timestamp": "2026-03-02 09:15:01 UTC"}\n', "nope\n"]))


def test_last_seen_from_connections_and_audit_records() -> None:
    seen = last_seen(LOG.splitlines(keepends=True))
    assert seen["ci"].application == "deploy" and seen["ci"].client == "10.0.0.9"
    assert seen["analyst"].at == T0 + dt.timedelta(seconds=3)
    assert "querygate_gateway" in seen and "" not in seen


def test_function_text_is_matched_however_its_values_are_spelt() -> None:
    sent = as_sent("SELECT 1 FROM t WHERE a = %(x)s AND b = %(y)s OR c = %(x)s AND d LIKE 'a%%'")
    assert sent == "SELECT 1 FROM t WHERE a = $1 AND b = $2 OR c = $1 AND d LIKE 'a%'"
    assert fingerprint(sent) == fingerprint(
        "select 1 from t where a = :x and b = 'q' or c = 3 and d like 'zz'")
    assert fingerprint(sent) != fingerprint("SELECT 1 FROM t WHERE a = $1")


def test_zone_abbreviations_need_the_servers_log_timezone() -> None:
    line = ("2026-03-02 10:15:01.000 CET [7] user=analyst,db=prod,app=psql LOG:  AUDIT: "
            "SESSION,1,1,READ,SELECT,TABLE,public.customers,SELECT 1,<none>\n")
    with pytest.raises(LogFormatError, match=r"'CET'.*--log-timezone"):
        list(audit_records([line]))
    (rec,) = audit_records([line], ZoneInfo("Europe/Berlin"))
    assert rec.at == T0 + dt.timedelta(seconds=1) and rec.at.tzinfo == dt.UTC
    assert (rec.role, rec.database, rec.application) == ("analyst", "prod", "psql")


def test_log_timezone_option_on_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "queries").mkdir()
    (tmp_path / "querygate.yaml").write_text(
        "database: {url: 'postgresql://gw@127.0.0.1:1/prod'}\nsecret_key: 0123456789abcdef0123"
        "\nclassification:\n  public.customers:\n    columns: {ssn: [pii.government_id]}\n")
    log = tmp_path / "postgresql.log"
    log.write_text("2026-03-02 10:15:01.000 CET [7] analyst@prod LOG:  AUDIT: SESSION,1,1,READ,"
                   "SELECT,TABLE,public.customers,SELECT ssn FROM customers,<none>\n")
    base = ["audit", "reconcile", str(log), "--project", str(tmp_path), "--json"]
    result = CliRunner().invoke(main, base)
    assert result.exit_code == 2 and "--log-timezone" in result.stderr
    result = CliRunner().invoke(main, [*base, "--log-timezone", "Mars/Olympus"])
    assert result.exit_code == 2 and "is not a time zone" in result.stderr
    result = CliRunner().invoke(main, [*base, "--log-timezone", "Europe/Berlin"])
    assert result.exit_code == 1, result.stderr
    (finding,) = json.loads(result.stdout)["findings"]
    assert (finding["rule"], finding["at"]) == ("bypass.role", "2026-03-02T09:15:01.000Z")


def test_ad_hoc_sql_rewritten_to_the_masked_views_matches_its_event() -> None:
    log = "\n".join([
        stderr("05.100", "querygate_gateway", 'SESSION,1,1,READ,SELECT,VIEW,'
               'querygate_masked.public_customers,"/* querygate:usr_1 */ SELECT t.email FROM '
               'querygate_masked.public_customers AS t",<none>', pid=9, app="querygate"),
        stderr("05.100", "querygate_gateway", 'SESSION,1,1,READ,SELECT,TABLE,public.customers,'
               '"/* querygate:usr_1 */ SELECT t.email FROM querygate_masked.public_customers '
               'AS t",<none>', pid=9, app="querygate"),
    ]) + "\n"
    adhoc = GatewayEvent("7", T0 + dt.timedelta(seconds=5), dt.timedelta(milliseconds=200),
                         "adhoc_sql", "usr_1", "SELECT email FROM customers")
    assert reconciled(log, [adhoc]).matched == 1
    other = GatewayEvent("7", adhoc.occurred_at, adhoc.duration, "adhoc_sql", "usr_2",
                         "SELECT email FROM customers")
    assert [f.rule for f in reconciled(log, [other]).findings] == ["bypass.unaudited"]


def test_tables_from_the_text_when_the_log_names_none() -> None:
    log = stderr("04.000", "legacy", 'SESSION,1,1,READ,SELECT,,,"SELECT c.email FROM customers c '
                 'JOIN hr.people p ON p.id = c.id",<none>', pid=8) + "\n"
    result = reconcile(audit_records([log]), classified=["hr.customers", "public.customers",
                                                        "hr.people"],
                       gateway_role="querygate_gateway", functions=Functions({}), events=[])
    (finding,) = result.findings
    assert finding.statement.tables == {"public.customers", "hr.people"}  # unqualified: public
    assert result.parsed == 1


def test_the_public_surface() -> None:
    from querygate import exposure

    assert {"find_exposures", "parse_allow", "reconcile", "live_bypasses", "Exposure",
            "Functions", "GatewayEvent"} <= set(exposure.__all__)
    assert all(hasattr(exposure, name) for name in exposure.__all__)
