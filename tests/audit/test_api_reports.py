"""The audit API, the reports (CLI and API) and the checkpoint commands, on the demo database."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psycopg
import pytest
from click.testing import CliRunner

from querygate.cli import main
from tests.demo_env import Demo, call, serving

pytestmark = pytest.mark.anyio
runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def project(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo project with compliance as audit reader and a checkpoint key."""
    target = tmp_path_factory.mktemp("audit") / "project"
    shutil.copytree(demo.project_dir, target)
    config = target / "querygate.yaml"
    text = config.read_text().replace("  url: null", "  url: null\n  readers: [compliance]", 1)
    config.write_text(text + "\ncheckpoints:\n  private_key: keys/checkpoint.pem\n"
                             "  folder: signed\n")
    code, output = invoke("audit", "keygen", "--out", str(target / "keys" / "checkpoint.pem"))
    assert code == 0 and "public_key: " in output
    return target


@pytest.fixture
async def client(project: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(project) as c:
        yield c


def auth(demo: Demo, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {demo.token(name)}"}


async def test_who_accessed_customer_42(client: httpx.AsyncClient, demo: Demo) -> None:
    assert (await call(client, demo.token("alice"), "get_customer_by_id", {"customer_id": 42},
                       reason="TICKET-9")).status_code == 200
    assert (await call(client, demo.token("bob"), "get_customer_by_id", {"customer_id": 42},
                       reason="BILL-3")).status_code == 200
    response = await client.get("/v1/audit/subjects/customer/42", params={"from": "2020-01-01"},
                                headers=auth(demo, "carol"))
    assert response.status_code == 200, response.text
    body = response.json()
    seen = {(e["actor_email"], e["reason"]) for e in body["events"]}
    assert {("alice@example.com", "TICKET-9"), ("bob@example.com", "BILL-3")} <= seen
    assert body["receipt"]["seq"] > max(e["seq"] for e in body["events"])
    assert "db;dur=" in response.headers["server-timing"]
    own = await client.get("/v1/audit/events", params={"user": "carol@example.com", "limit": 1},
                           headers=auth(demo, "carol"))
    assert own.json()["events"][0]["function_name"] == "querygate.audit.subject"
    assert own.json()["events"][0]["subjects"] == [{"type": "customer", "id": "42"}]


async def test_only_audit_readers_may_read(client: httpx.AsyncClient, demo: Demo) -> None:
    refused = await client.get("/v1/audit/subjects/customer/42", headers=auth(demo, "alice"))
    assert refused.status_code == 403 and refused.json()["error"]["rule"] == "audit.readers"
    assert (await client.get("/v1/audit/head")).status_code == 401
    mine = await client.get("/v1/audit/events", params={"user": "alice@example.com", "limit": 1,
                                                        "decision": "denied"},
                            headers=auth(demo, "carol"))
    assert mine.json()["events"][0]["function_name"] == "querygate.audit.subject"


@pytest.mark.parametrize(("path", "params"), [
    ("/v1/audit/events", {"limit": "0"}),
    ("/v1/audit/events", {"from": "March"}),
    ("/v1/audit/events", {"decision": "maybe"}),
    ("/v1/reports/subject-access", {"subject": "customer42"}),
    ("/v1/reports/everything", {}),
    ("/v1/reports/soc2", {"format": "pdf"}),
    ("/v1/reports/offboarding", {}),
])
async def test_bad_parameters_are_422(client: httpx.AsyncClient, demo: Demo, path: str,
                                      params: dict[str, str]) -> None:
    response = await client.get(path, params=params, headers=auth(demo, "carol"))
    assert response.status_code == 422 and response.json()["error"]["code"] == "bad_parameters"


async def test_reports_through_the_api(client: httpx.AsyncClient, demo: Demo) -> None:
    await call(client, demo.token("alice"), "get_customer_by_id", {"customer_id": 42})
    got = await client.get("/v1/reports/subject-access", headers=auth(demo, "carol"),
                           params={"subject": "customer:42", "format": "json"})
    assert got.status_code == 200, got.text
    report = got.json()
    assert report["integrity"]["ok"] and report["kind"] == "subject-access"
    accesses = report["sections"][0]["rows"]
    alice = next(r for r in accesses if r["Who"] == "alice@example.com")
    assert "iban (last 4 characters only)" in alice["Fields masked or withheld"]
    assert "email" in alice["Fields seen in clear"]
    page = await client.get("/v1/reports/subject-access", headers=auth(demo, "carol"),
                            params={"subject": "customer:42", "format": "html"})
    assert page.headers["content-type"].startswith("text/html")
    assert "Log verified" in page.text and "@media print" in page.text
    for kind, params in (("offboarding", {"user": "bob@example.com"}), ("access-review", {}),
                         ("soc2", {"format": "csv"})):
        response = await client.get(f"/v1/reports/{kind}", params=params,
                                    headers=auth(demo, "carol"))
        assert response.status_code == 200, (kind, response.text)
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["SOC 2 evidence pack"] and ["Policy versions in force"] in rows


async def test_checkpoint_verify_export_and_reports_from_the_cli(
        client: httpx.AsyncClient, demo: Demo, project: Path, tmp_path: Path) -> None:
    await call(client, demo.token("carol"), "get_customer_by_id", {"customer_id": 42}, "DSAR-1")
    where = ("--project", str(project))
    code, output = await asyncio.to_thread(invoke, "audit", "checkpoint", *where)
    assert code == 0 and output.startswith("checkpoint: ") and "signed by key" in output
    code, output = await asyncio.to_thread(invoke, "audit", "verify", *where)
    assert code == 0 and output.startswith("ok:") and "1 signed checkpoint(s) matched" in output
    code, output = await asyncio.to_thread(invoke, "audit", "verify", "--from-checkpoint", *where)
    assert code == 0 and "after the checkpoint at seq" in output
    code, output = await asyncio.to_thread(invoke, "audit", "export", *where)
    exported = tmp_path / "all.jsonl"
    exported.write_text("".join(line + "\n" for line in output.splitlines()
                                if line.startswith("{")))
    code, output = await asyncio.to_thread(invoke, "audit", "verify", "--export", str(exported),
                                           *where)
    assert code == 0 and "exported events verified" in output, output
    out = tmp_path / "dsar.json"
    code, output = await asyncio.to_thread(
        invoke, "reports", "subject-access", "customer:42", "--format", "json", "--out", str(out),
        *where)
    assert code == 0, output
    report = json.loads(out.read_text())
    assert report["integrity"]["ok"]
    assert any(r["Purpose / reason"] == "DSAR-1" for r in report["sections"][0]["rows"])
    code, output = await asyncio.to_thread(invoke, "reports", "offboarding", "bob@example.com",
                                           "--format", "csv", *where)
    assert code == 0 and "Offboarding report: bob@example.com" in output
    for kind in ("access-review", "soc2"):
        code, output = await asyncio.to_thread(invoke, "reports", kind, "--format", "json",
                                               "--quick", *where)
        assert code == 0, output
        assert json.loads(output[output.index("{"):])["sections"], kind


async def test_the_soc2_pack_lists_alerts_and_their_handling(client: httpx.AsyncClient,
                                                              demo: Demo) -> None:
    before = await client.get("/v1/reports/soc2", headers=auth(demo, "carol"))
    assert not any("no alert store" in line for line in before.json()["not_available"])
    with psycopg.connect(demo.admin_url, autocommit=True) as conn:
        conn.execute("INSERT INTO querygate.alerts (id, key, actor_id, rule, severity, raised_at, "
                     "summary, details, status, acknowledged_by, acknowledged_at, note) VALUES "
                     "('alr_1', 'k1', 'usr_x', 'volume_spike', 'high', now(), 'read 900 customers',"
                     " '{}', 'acknowledged', 'carol@example.com', now(), 'ticket SEC-4')")
    after = await client.get("/v1/reports/soc2", headers=auth(demo, "carol"))
    section = next(s for s in after.json()["sections"] if s["title"].startswith("CC7.2 Alerts"))
    assert section["rows"][0]["Rule"] == "volume_spike"
    assert section["rows"][0]["Acknowledged by"].startswith("carol@example.com at ")
    assert section["rows"][0]["Note"] == "ticket SEC-4"
