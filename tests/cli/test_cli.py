"""The command line, in process: every command documented, check's JSON contract, the directory."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from querygate.cli import main
from querygate.gateway import Gateway
from querygate.project import load_project
from tests.demo_env import Demo

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def all_commands() -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for name, command in main.commands.items():
        if isinstance(command, click.Group):
            found += [(name, sub) for sub in command.commands]
        else:
            found.append((name,))
    return found


def test_every_command_has_help_with_an_example() -> None:
    commands = all_commands()
    assert {c[0] for c in commands} >= {"demo", "init", "serve", "check", "call", "users",
                                         "tokens", "audit", "setup"}
    assert ("audit", "subject") in commands and ("users", "revoke") in commands
    for command in commands:
        code, output = invoke(*command, "--help")
        assert code == 0, command
        assert "Example:" in output and "querygate " in output, command


def test_init_writes_a_starter_once(tmp_path: Path) -> None:
    code, output = invoke("init", str(tmp_path / "gw"))
    assert code == 0 and "querygate.yaml" in output
    assert (tmp_path / "gw" / "queries" / "customers.sql").exists()
    code, output = invoke("init", str(tmp_path / "gw"))
    assert code == 1 and "already holds" in output


def test_check_json_follows_the_contract(demo: Demo) -> None:
    code, output = invoke("check", "--json", "--project", str(demo.project_dir))
    assert code == 0, output
    report = json.loads(output)
    fn = next(f for f in report["functions"] if f["name"] == "get_customer_by_id")
    iban = next(c for c in fn["columns"] if c["name"] == "iban")
    assert iban == {"name": "iban", "sources": ["public.customers.iban"], "tags": ["pii.financial"]}
    assert {"source": "public.customers.id", "tags": []} in fn["filters"]
    assert {"type": "customer", "column": "id"} in fn["subjects"]
    assert fn["problems"] == []
    assert report["decisions"]["support"]["get_customer_by_id"]["iban"] == "mask.last4"
    assert report["decisions"]["support"]["get_customer_by_id"]["ssn"] == "omit"
    assert "search_customers" in report["refused"]["billing"]


def test_check_text_reads_for_a_reviewer(demo: Demo) -> None:
    code, output = invoke("check", "--project", str(demo.project_dir))
    assert code == 0
    assert "function get_customer_by_id" in output
    assert "iban" in output and "public.customers.iban" in output and "[pii.financial]" in output
    assert "REFUSED" in output


def test_check_fails_on_a_function_that_does_not_fit_the_schema(demo: Demo,
                                                                 tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "queries").mkdir()
    config = (demo.project_dir / "querygate.yaml").read_text()
    (broken / "querygate.yaml").write_text(config[:config.index("roles:")])
    (broken / "queries" / "x.sql").write_text(
        "-- name: x_missing_column\nSELECT no_such_column FROM customers;\n")
    code, output = invoke("check", "--project", str(broken))
    assert code == 1
    assert "PROBLEM" in output and "no_such_column" in output


def test_users_and_tokens(demo: Demo) -> None:
    project = ("--project", str(demo.project_dir))
    code, output = invoke("users", "add", "erin@example.com", "--role", "support", *project)
    assert code == 0 and "added erin@example.com" in output
    code, output = invoke("users", "add", "erin@example.com", "--role", "support", *project)
    assert code == 1 and "already exists" in output
    code, output = invoke("users", "add", "x@example.com", "--role", "wizard", *project)
    assert code == 1 and "'wizard' is not defined" in output
    code, output = invoke("tokens", "issue", "erin@example.com", "--ttl", "1d", *project)
    assert code == 0 and output.strip().splitlines()[-1].startswith("qg_")
    code, output = invoke("users", "list", *project)
    assert "erin@example.com" in output and "active" in output
    code, output = invoke("users", "revoke", "erin@example.com", *project)
    assert code == 0 and "1 token(s) revoked" in output
    code, output = invoke("tokens", "issue", "erin@example.com", *project)
    assert code == 1 and "offboarded" in output


async def _calls(project_dir: Path, token: str) -> None:
    gw = await Gateway.open(load_project(project_dir))
    try:
        await gw.call(token, "get_customer_by_id", {"customer_id": 42}, "TICKET-42", "10.0.0.5")
        await gw.call(token, "list_customer_orders", {"customer_id": 42}, "TICKET-42", "10.0.0.5")
    finally:
        await gw.close()


def test_audit_answers_and_verifies(demo: Demo) -> None:
    asyncio.run(_calls(demo.project_dir, demo.token("carol")))
    project = ("--project", str(demo.project_dir))
    code, output = invoke("audit", "subject", "customer:42", "--from", "2020-01-01", *project)
    assert code == 0
    assert "carol@example.com" in output and "get_customer_by_id" in output
    assert "TICKET-42" in output and "ssn=mask.hash" in output
    code, output = invoke("audit", "subject", "customer:42", "--json", *project)
    lines = [json.loads(line) for line in output.splitlines()]
    assert {"customer", "42"} <= {v for e in lines for s in e["subjects"] for v in s.values()}
    assert {"seq", "event_id", "occurred_at", "actor_id", "actor_email", "actor_roles",
            "function_name", "parameters", "decision", "reason", "rows_returned", "fields",
            "subjects", "client_addr", "duration_ms", "prev_hash", "hash"} <= set(lines[0])
    code, output = invoke("audit", "search", "--user", "carol@example.com",
                          "--function", "list_customer_orders", *project)
    assert code == 0 and "list_customer_orders" in output and "get_customer_by_id" not in output
    code, output = invoke("audit", "verify", *project)
    assert code == 0 and output.startswith("ok:")
    assert "walk: fast; the content constraint holds on every partition" in output
    code, output = invoke("audit", "verify", "--deep", *project)
    assert code == 0 and output.startswith("ok:") and "walk: deep (--deep)" in output
    code, output = invoke("audit", "export", *project)
    exported = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert [e["seq"] for e in exported] == list(range(1, len(exported) + 1))
    code, output = invoke("audit", "subject", "customer42", *project)
    assert code == 1 and "TYPE:ID" in output


def test_bad_dates_are_explained(demo: Demo) -> None:
    code, output = invoke("audit", "search", "--from", "March", "--project", str(demo.project_dir))
    assert code == 1 and "--from 'March'" in output


@pytest.mark.parametrize("args", [("check",), ("users", "list"), ("audit", "verify")])
def test_missing_project_is_explained(tmp_path: Path, args: tuple[str, ...]) -> None:
    code, output = invoke(*args, "--project", str(tmp_path))
    assert code == 1 and "querygate init" in output


def test_every_setting_and_command_is_documented() -> None:
    from querygate.settings import SETTINGS

    docs = "\n".join(p.read_text() for p in Path(__file__).parents[2].glob("docs/*.md"))
    for name, _default, _help in SETTINGS:
        assert f"`{name}`" in docs, name
    for command in all_commands():
        assert f"querygate {' '.join(command)}" in docs, command
