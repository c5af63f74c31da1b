"""``audit reconcile`` on the real log of a PostgreSQL with pgAudit loaded: gateway calls are
matched to their audit events, and every read around the gateway is found, nothing else."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from querygate.cli import main
from querygate.demo import demo_tokens, load_sample, write_project
from querygate.gateway import Gateway
from querygate.project import load_project
from querygate.provision import DEFAULT_GATEWAY_ROLE, setup_database, url_for
from tests.exposure.pgaudit_server import audited_server, unavailable

pytestmark = pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))

CALLS = [  # (user, function, params, reason)
    ("alice", "get_customer_by_id", {"customer_id": 3}, "TICKET-1"),
    ("alice", "list_customer_orders", {"customer_id": 3}, "TICKET-1"),
    ("bob", "get_account_balances", {"customer_id": 4}, "BILL-7"),
    ("bob", "get_customer_by_id", {"customer_id": 5}, "BILL-7"),
    ("carol", "search_customers", {"email_prefix": "a"}, "DSAR-2"),
    ("alice", "get_customer_by_id", {"customer_id": 6}, "TICKET-2"),
]


@dataclass(frozen=True)
class Traffic:
    project: Path
    stderr_log: Path
    csv_log: Path
    json_log: Path
    admin_url: str
    gateway_url: str
    analyst_url: str


async def _gateway_calls(project: Path, tokens: dict[str, str]) -> None:
    gateway = await Gateway.open(load_project(project))
    try:
        for user, function, params, reason in CALLS:
            await gateway.call(tokens[f"{user}@example.com"], function, params, reason)
        await gateway.sql(tokens["carol@example.com"],
                          "SELECT id, email FROM customers WHERE id = 9", "DSAR-3")
        export = await gateway.export(tokens["bob@example.com"], "customers_by_country", {},
                                      "BILL-8")  # a server-side cursor: DECLARE … CURSOR FOR
        export.rows_file.close()
    finally:
        await gateway.close()


def _bypasses(admin: str, gateway_url: str, analyst_url: str, project: Path) -> None:
    """Reads that went around the gateway, each marked in its text where it can be."""
    with psycopg.connect(analyst_url, autocommit=True) as conn:
        conn.execute("SELECT ssn FROM customers WHERE id = 1 /* b1 */").fetchall()
        conn.execute("SELECT * FROM qg_contacts /* b2 view */").fetchall()
        with conn.cursor() as cur, cur.copy("COPY customers (iban) TO STDOUT") as copy:
            list(copy)
    with psycopg.connect(gateway_url, autocommit=True,
                         application_name="psql") as conn:  # the gateway's credential, elsewhere
        conn.execute("SELECT iban FROM customers /* b3 */").fetchall()
        user_id = conn.execute("SELECT actor_id FROM querygate.audit_events WHERE actor_email = "
                               "'alice@example.com' LIMIT 1").fetchone()
        assert user_id is not None
        # a real function's text and a real person's label, with no call behind it
        forged = load_project(project).catalog["get_customer_by_id"].exec_sql
        conn.execute(f"/* querygate:{user_id[0]} */ {forged}".encode(),
                     {"customer_id": 42}).fetchall()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("SELECT count(*) FROM querygate.audit_events").fetchall()  # not classified


def _wait_for(path: Path, marker: str) -> None:
    deadline = time.monotonic() + 10
    while not (path.exists() and marker in path.read_text(errors="replace")):
        assert time.monotonic() < deadline, f"{marker} never reached {path}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traffic]:
    with audited_server() as server:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE prod")
        admin = url_for(server.url, dbname="prod")
        with psycopg.connect(admin) as conn:
            conn.execute("SET pgaudit.log = 'none'")  # loading the data is not the test
            load_sample(conn, customers=60)
            conn.execute("CREATE VIEW qg_contacts AS SELECT id, email FROM customers")
            conn.execute("CREATE ROLE analyst LOGIN")
            conn.execute("GRANT SELECT ON customers, qg_contacts TO analyst")
        setup_database(admin)
        gateway_url = url_for(admin, user=DEFAULT_GATEWAY_ROLE)
        project = write_project(tmp_path_factory.mktemp("reconcile"), gateway_url)
        tokens = asyncio.run(demo_tokens(gateway_url))
        asyncio.run(_gateway_calls(project, tokens))
        time.sleep(1.5)  # past every call's window, for the forged statement below
        analyst_url = url_for(admin, user="analyst")
        _bypasses(admin, gateway_url, analyst_url, project)
        _wait_for(server.csv_log, "/* b3 */")
        _wait_for(server.stderr_log, "/* b3 */")
        _wait_for(server.json_log, "/* b3 */")
        yield Traffic(project, server.stderr_log, server.csv_log, server.json_log, admin,
                      gateway_url, analyst_url)


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def _key(finding: dict[str, object]) -> tuple[str, str, str]:
    text = str(finding["statement"])
    marker = next((m for m in ("b1", "b2", "b3", "COPY") if f"/* {m}" in text or m == text[:4]),
                  "forged")
    return str(finding["rule"]), str(finding["role"]), marker


EXPECTED = sorted([
    ("bypass.role", "analyst", "b1"),
    ("bypass.role", "analyst", "b2"),
    ("bypass.role", "analyst", "COPY"),
    ("bypass.unaudited", DEFAULT_GATEWAY_ROLE, "b3"),
    ("bypass.unaudited", DEFAULT_GATEWAY_ROLE, "forged"),
])


@pytest.mark.parametrize("which", ["stderr", "csvlog", "jsonlog"])
def test_every_bypass_is_found_and_every_gateway_call_matched(traffic: Traffic,
                                                              which: str) -> None:
    log = {"stderr": traffic.stderr_log, "csvlog": traffic.csv_log,
           "jsonlog": traffic.json_log}[which]
    code, out, err = invoke("audit", "reconcile", str(log), "--json", "--tolerance", "0.5",
                            "--project", str(traffic.project))
    assert code == 1, err
    report = json.loads(out)
    assert report["format"] == which
    assert sorted(_key(f) for f in report["findings"]) == EXPECTED
    assert report["matched"] == len(CALLS) + 2  # every call, the ad-hoc query, the export
    assert report["startup_checks"] >= 10 and report["purpose_checks"] >= 1
    assert report["tables_from_text"] == 0
    b2 = next(f for f in report["findings"] if "/* b2" in f["statement"])
    assert b2["tables"] == ["public.customers"]  # the view's base table, from pgAudit
    forged = next(f for f in report["findings"] if _key(f)[2] == "forged")
    assert "get_customer_by_id" in forged["why"]
    alerts = report["alerts"]
    assert [(a["rule"], a["severity"]) for a in alerts] == [(f["rule"], "high")
                                                            for f in report["findings"]]
    assert all(a["raised_at"].endswith("Z") and a["actor_id"].startswith("pg:") for a in alerts)


def test_alerts_as_jsonl_and_the_plain_report(traffic: Traffic, tmp_path: Path) -> None:
    target = tmp_path / "alerts.jsonl"
    code, out, _ = invoke("audit", "reconcile", str(traffic.stderr_log), "--tolerance", "0.5",
                          "--alerts", str(target), "--project", str(traffic.project))
    assert code == 1
    alerts = [json.loads(line) for line in target.read_text().splitlines()]
    assert sorted(a["rule"] for a in alerts) == sorted(rule for rule, _, _ in EXPECTED)
    assert "5 finding(s):" in out and "bypass.role" in out and "analyst@prod" in out
    assert f"gateway role {DEFAULT_GATEWAY_ROLE}: {len(CALLS) + 2} matched" in out
    code, out, err = invoke("audit", "reconcile", str(traffic.csv_log), "--tolerance", "0.5",
                            "--alerts", "-", "--project", str(traffic.project))
    assert code == 1 and len(out.splitlines()) == 5 and "5 finding(s):" in err


def test_events_from_an_export_file(traffic: Traffic, tmp_path: Path) -> None:
    exported = tmp_path / "events.jsonl"
    code, _, err = invoke("audit", "export", "--out", str(exported), "--project",
                          str(traffic.project))
    assert code == 0, err
    code, out, err = invoke("audit", "reconcile", str(traffic.stderr_log), "--events",
                            str(exported), "--tolerance", "0.5", "--json", "--project",
                            str(traffic.project))
    assert code == 1, err
    report = json.loads(out)
    assert sorted(_key(f) for f in report["findings"]) == EXPECTED
    assert report["matched"] == len(CALLS) + 2
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"occurred_at": "yesterday"}\n')
    code, _, err = invoke("audit", "reconcile", str(traffic.stderr_log), "--events", str(broken),
                          "--project", str(traffic.project))
    assert code == 2 and "line 1 is not an audit event" in err


def test_record_keeps_each_alert_once(traffic: Traffic) -> None:
    args = ("audit", "reconcile", str(traffic.csv_log), "--tolerance", "0.5", "--record",
            "--project", str(traffic.project))
    code, _, err = invoke(*args)
    assert code == 1 and "recorded 5 new alert(s)" in err
    code, _, err = invoke(*args)
    assert code == 1 and "recorded 0 new alert(s)" in err
    with psycopg.connect(traffic.admin_url) as conn:
        rows = conn.execute("SELECT rule, actor_id FROM querygate.alerts WHERE rule LIKE "
                            "'bypass.%' ORDER BY rule, actor_id").fetchall()
    assert sorted(rows) == sorted((rule, f"pg:{role}") for rule, role, _ in EXPECTED)


def test_a_log_with_only_gateway_traffic_is_clean(traffic: Traffic, tmp_path: Path) -> None:
    clean = tmp_path / "clean.log"
    lines = traffic.stderr_log.read_text().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if "/* b1 */" in line)
    clean.write_text("".join(lines[:cut]))
    code, out, err = invoke("audit", "reconcile", str(clean), "--project", str(traffic.project))
    assert code == 0, out + err
    assert "ok: every statement on a classified table went through the gateway" in out
    assert f"{DEFAULT_GATEWAY_ROLE}: {len(CALLS) + 2} matched to audit events" in out


def test_live_sessions_on_classified_tables(traffic: Traffic) -> None:
    args = ("audit", "reconcile", "--live", "--admin-url", traffic.admin_url, "--json",
            "--project", str(traffic.project))
    code, out, err = invoke(*args)
    assert code == 0, out + err
    with psycopg.connect(traffic.analyst_url) as analyst, \
            psycopg.connect(traffic.gateway_url, application_name="psql") as stolen:
        analyst.execute("SELECT email FROM customers LIMIT 1").fetchall()
        stolen.execute("SELECT iban FROM accounts LIMIT 1").fetchall()
        code, out, err = invoke(*args)
        assert code == 1, err
        found = {(s["rule"], s["role"], tuple(s["tables"])) for s in json.loads(out)["sessions"]}
        assert found == {("bypass.role", "analyst", ("public.customers",)),
                         ("bypass.unaudited", DEFAULT_GATEWAY_ROLE, ("public.accounts",))}


def test_bad_input_exits_2(traffic: Traffic, tmp_path: Path) -> None:
    project = ("--project", str(traffic.project))
    code, _, err = invoke("audit", "reconcile", str(tmp_path / "nope.log"), *project)
    assert code == 2 and "cannot read" in err and "nope.log" in err
    odd = tmp_path / "syslog.txt"
    odd.write_text("Dec  6 10:00:00 db postgres[42]: LOG: hello\n")
    code, _, err = invoke("audit", "reconcile", str(odd), *project)
    assert code == 2 and "unknown log format" in err
    bare = tmp_path / "bare.log"
    bare.write_text("2026-03-02 09:15:00.100 UTC [4242] LOG:  AUDIT: SESSION,1,1,READ,SELECT,"
                    "TABLE,public.customers,SELECT 1,<none>\n")
    code, _, err = invoke("audit", "reconcile", str(bare), *project)
    assert code == 2 and "names no role" in err and "%u@%d" in err
    code, _, err = invoke("audit", "reconcile", *project)
    assert code == 2 and "--live" in err
    code, _, err = invoke("audit", "reconcile", "--live", "--admin-url", "host=db port", *project)
    assert code == 2 and "--admin-url is not a PostgreSQL URL" in err
