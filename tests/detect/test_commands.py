"""``detect backtest`` (the public contract) and ``import pgaudit`` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from querygate.cli import main
from tests.detect.office import Office, moment

KEEP = ("occurred_at", "actor_id", "function_name", "decision", "subjects")


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_backtest_reads_the_five_required_fields_and_prints_alerts_as_jsonl(
        tmp_path: Path) -> None:
    office = Office(agents=4, per_day=10).honest(12)
    for k in range(4):
        office.event(moment(10, 10 + k / 10), "a1", "search_customers",
                     [office.rng.randrange(10**6) for _ in range(50)])
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps({k: line[k] for k in KEEP}) + "\n"
                              for line in office.lines()) + "\n")
    code, out, err = invoke("detect", "backtest", str(events), "--project", str(tmp_path))
    assert code == 0, err
    alerts = [json.loads(line) for line in out.splitlines()]
    assert [(a["actor_id"], a["rule"], a["severity"]) for a in alerts] == [
        ("a1", "volume.spike", "high")]
    raised = alerts[0]["raised_at"]
    assert raised in {line["occurred_at"] for line in office.lines() if line["actor_id"] == "a1"}
    assert "1 alert(s): volume.spike 1" in err


def test_backtest_passes_over_refusals_of_unknown_tokens_in_an_export(tmp_path: Path) -> None:
    """``audit export`` keeps refused unknown tokens (no actor); they judge no person."""
    events = tmp_path / "events.jsonl"
    events.write_text('{"occurred_at": "2026-01-05T10:00:00Z", "actor_id": null, '
                      '"function_name": "f", "decision": "denied", "subjects": [], '
                      '"error_code": "not_authenticated"}\n'
                      '{"occurred_at": "2026-01-05T10:01:00Z", "actor_id": "a", '
                      '"function_name": "f", "decision": "allowed", "subjects": []}\n')
    code, out, err = invoke("detect", "backtest", str(events), "--project", str(tmp_path))
    assert code == 0, err
    assert out == ""


def test_backtest_names_the_bad_line(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"occurred_at": "2026-01-05T10:00:00Z", "actor_id": "a", '
                      '"function_name": "f", "decision": "allowed", "subjects": []}\n'
                      '{"occurred_at": "2026-01-05T10:01:00Z"}\n')
    code, _, err = invoke("detect", "backtest", str(events), "--project", str(tmp_path))
    assert code == 1
    assert "line 2: missing actor_id, function_name, decision, subjects" in err


def test_backtest_reads_the_watch_list_and_relationships_from_files(tmp_path: Path) -> None:
    office = Office(agents=4, per_day=10).honest(12)
    office.event(moment(10, 11), "a1", "get_customer_by_id", [4242])
    office.event(moment(11, 11), "a2", "get_customer_by_id", [1111])
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(line) + "\n" for line in office.lines()))
    (tmp_path / "watch.csv").write_text("subject,why\ncustomer:4242,public figure\n")
    (tmp_path / "links.csv").write_text("actor,subject,kind\na2,customer:1111,self\n")
    code, out, err = invoke("detect", "backtest", str(events), "--watch",
                            str(tmp_path / "watch.csv"), "--relationships",
                            str(tmp_path / "links.csv"), "--project", str(tmp_path))
    assert code == 0, err
    found = {(a["actor_id"], a["rule"], a["subjects"][0], a["raised_at"][:10])
             for a in map(json.loads, out.splitlines())}
    assert found == {("a1", "watch.subject", "customer:4242", "2026-01-15"),
                     ("a2", "watch.related", "customer:1111", "2026-01-16")}
    (tmp_path / "watch.csv").write_text("customer:1\n4242,public figure\n")
    code, _, err = invoke("detect", "backtest", str(events), "--watch",
                          str(tmp_path / "watch.csv"), "--project", str(tmp_path))
    assert code == 1 and "watch.csv:2: '4242' is not a subject; write TYPE:ID" in err


LOG = """\
2026-03-02 09:15:00.100 UTC [4242] readonly_user@prod LOG:  AUDIT: SESSION,1,1,READ,SELECT,\
TABLE,public.customers,"SELECT * FROM customers WHERE id = 42",<not logged>
2026-03-02 09:15:01.000 UTC [4242] readonly_user@prod LOG:  AUDIT: SESSION,2,1,READ,SELECT,\
TABLE,public.orders,"SELECT o.* FROM orders o
    WHERE o.customer_id IN (7, 8)",<not logged>
2026-03-02 09:15:01.000 UTC [4242] readonly_user@prod LOG:  AUDIT: SESSION,2,1,READ,SELECT,\
TABLE,public.orders,"SELECT o.* FROM orders o
    WHERE o.customer_id IN (7, 8)",<not logged>
2026-03-02 10:00:00.000+01:00 [77] app=psql,client=10.0.0.5 user=analyst@prod LOG:  AUDIT: \
SESSION,3,1,READ,SELECT,,,"SELECT * FROM customers c WHERE c.id = $1",99
2026-03-02 10:00:01 UTC [77] analyst@prod ERROR:  permission denied for table ssn_vault
"""


def test_import_pgaudit_maps_people_and_subjects(tmp_path: Path) -> None:
    log = tmp_path / "postgresql.log"
    log.write_text(LOG)
    code, out, err = invoke("import", "pgaudit", str(log), "--map", "10.0.0.5=alice@example.com",
                            "--subject", "public.customers.id=customer",
                            "--subject", "public.orders.customer_id=customer",
                            "--project", str(tmp_path))
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [(e["actor_id"], e["occurred_at"], [s["id"] for s in e["subjects"]]) for e in events] \
        == [("pg:readonly_user", "2026-03-02T09:15:00.100Z", ["42"]),
            ("pg:readonly_user", "2026-03-02T09:15:01.000Z", ["7", "8"]),
            ("alice@example.com", "2026-03-02T09:00:00.000Z", ["99"])]
    assert events[2]["client_addr"] == "10.0.0.5" and events[0]["decision"] == "allowed"
    assert "3 event(s), 1 other log record(s) skipped" in err
    assert "shared roles with no person" in err and "readonly_user" in err
    converted = tmp_path / "events.jsonl"
    converted.write_text(out)
    code, _, err = invoke("detect", "backtest", str(converted), "--project", str(tmp_path))
    assert code == 0 and "0 alert(s)" in err


def test_import_pgaudit_needs_subject_columns(tmp_path: Path) -> None:
    log = tmp_path / "postgresql.log"
    log.write_text(LOG)
    code, _, err = invoke("import", "pgaudit", str(log), "--project", str(tmp_path))
    assert code == 1 and "--subject public.customers.id=customer" in err
