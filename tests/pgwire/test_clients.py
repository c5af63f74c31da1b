"""Clients in other languages: pgjdbc (what DBeaver, DataGrip and Metabase use) with its
DatabaseMetaData, and node-postgres. Installed by .ci/run; skipped only where the runtime
itself is missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.pgwire.conftest import Front
from tests.pgwire.helpers import events, last_seq

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
JDBC_JAR = Path(os.environ.get("QUERYGATE_JDBC_JAR", "/usr/share/java/postgresql.jar"))
NPM_DIR = ROOT / ".cache" / "npm"
PG_NPM_VERSION = "8.23.1"


@pytest.fixture(scope="module")
def jdbc_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("javac") is None or shutil.which("java") is None:
        pytest.skip("no Java runtime on this machine (Java 17: javac and java)")
    if not JDBC_JAR.exists():
        pytest.skip(f"pgjdbc is not installed at {JDBC_JAR} (apt-get install "
                    "libpostgresql-jdbc-java; ./run test does as root)")
    folder = tmp_path_factory.mktemp("jdbc")
    shutil.copy(HERE / "QuerygateJdbc.java", folder)
    subprocess.run(["javac", "QuerygateJdbc.java"], cwd=folder, check=True, timeout=60)
    return folder


def run_jdbc(folder: Path, front: Front, name: str) -> list[str]:
    done = subprocess.run(
        ["java", "-cp", f"{JDBC_JAR}{os.pathsep}{folder}", "QuerygateJdbc",
         f"jdbc:postgresql://127.0.0.1:{front.port}/querygate", f"{name}@example.com",
         front.demo.token(name)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_pgjdbc_calls_and_reads_metadata_for_a_support_agent(jdbc_program: Path,
                                                            front: Front) -> None:
    before = last_seq(front.demo)
    lines = run_jdbc(jdbc_program, front, "alice")
    assert "product PostgreSQL 16.0 (querygate)" in lines
    assert "col id int8 = 42" in lines and "col iban text = ****4242" in lines
    assert any(line.startswith("col created_at timestamptz = 20") for line in lines)
    assert not any(line.startswith("col ssn") for line in lines)
    assert "reason TICKET-9" in lines and "adhoc refused 42501" in lines
    assert "tables 0" in lines and "columns 0" in lines  # no ad-hoc SQL: no tables to browse
    functions = [line.split()[1] for line in lines if line.startswith("function ")]
    assert functions == ["get_customer_by_id", "get_order_by_id", "get_ticket"]
    assert "schema public" in lines and not any("querygate" in line for line in lines
                                                if line.startswith("schema "))
    calls = events(front.demo, "seq > %s AND function_name = 'get_customer_by_id'", before)
    assert len(calls) == 6 and all(e["context"]["application"] == "jdbc-test" for e in calls)
    assert calls[-1]["context"]["client"] == "postgres"


def test_pgjdbc_metadata_for_an_adhoc_role_marks_masked_columns(jdbc_program: Path,
                                                                front: Front) -> None:
    lines = run_jdbc(jdbc_program, front, "carol")
    assert "adhoc allowed" in lines
    assert "table public customers readable with ad-hoc SQL [masked: iban: mask.last4, " \
           "ssn: mask.hash]" in lines
    assert "column customers iban text masked: mask.last4" in lines
    assert "column customers id int8 null" in lines
    assert not any("audit" in line or "querygate." in line for line in lines
                   if line.startswith(("table", "column")))
    assert any(line.startswith("col ssn text = h:") for line in lines)  # a keyed hash


@pytest.fixture(scope="module")
def node_pg() -> Path:
    if shutil.which("node") is None:
        pytest.skip("no Node.js runtime on this machine")
    modules = NPM_DIR / "node_modules"
    if not (modules / "pg").exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is missing, so node-postgres cannot be installed")
        subprocess.run([npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix",
                        str(NPM_DIR), f"pg@{PG_NPM_VERSION}"], check=True, timeout=180,
                       capture_output=True)
    return modules


def test_node_postgres(node_pg: Path, front: Front) -> None:
    done = subprocess.run(["node", str(HERE / "querygate_node.js"), str(front.port),
                           "alice@example.com", front.demo.token("alice")],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "NODE_PATH": str(node_pg)})
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["row"]["full_name"] == "Ada Canary" and out["row"]["iban"] == "****4242"
    assert "ssn" not in out["row"]
    assert ["id", 20] in out["fields"] and ["iban", 25] in out["fields"]
    assert out["prepared"] == ["43", "42"]
    assert "get_customer_by_id" in out["functions"]
    assert "list_customer_payments" not in out["functions"]
    assert out["adhoc"] == "42501" and out["bad"] == "22023"
    assert any("iban (mask.last4)" in n for n in out["notices"])
