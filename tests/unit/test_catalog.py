"""Query files and project loading: clear errors that name the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from querygate.catalog import load_catalog, parse_query_file, to_psycopg
from querygate.errors import ProjectError
from querygate.project import load_project

GOOD = """\
-- name: get_customer_by_id
-- Fetch one customer, for debugging billing issues.
-- param customer_id: int
SELECT * FROM customers WHERE id = :customer_id;

-- name: search_customers
-- param email_prefix: text
SELECT id, email FROM customers WHERE email LIKE :email_prefix || '%' AND note::text <> 'a:b';
"""


def write(tmp_path: Path, text: str, name: str = "q.sql") -> Path:
    (tmp_path / "queries").mkdir(exist_ok=True)
    path = tmp_path / "queries" / name
    path.write_text(text)
    return path


def test_blocks_parse_with_descriptions_and_parameters(tmp_path: Path) -> None:
    blocks = parse_query_file(write(tmp_path, GOOD))
    assert [b.name for b in blocks] == ["get_customer_by_id", "search_customers"]
    assert blocks[0].description == "Fetch one customer, for debugging billing issues."
    assert [(p.name, p.type) for p in blocks[0].parameters] == [("customer_id", "int")]
    assert blocks[1].line == 6
    assert blocks[0].sql == "SELECT * FROM customers WHERE id = :customer_id;"


def test_placeholders_become_bound_parameters_and_percent_is_escaped() -> None:
    sql = "SELECT x::text, ':notaparam' FROM t WHERE a LIKE :p || '%' AND b = :q;"
    assert to_psycopg(sql) == (
        "SELECT x::text, ':notaparam' FROM t WHERE a LIKE %(p)s || '%%' AND b = %(q)s"
    )


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("-- name: f\n-- param x: integer\nSELECT :x", "unknown type 'integer'", 2),
        ("-- name: f\nSELECT :x", "uses :x but declares no", 1),
        ("-- name: f\n-- param x: int\nSELECT 1", "never uses :x", 1),
        ("-- name: f\n-- param x: int\n-- param x: int\nSELECT :x", "declared twice", 3),
        ("-- name: Bad-Name\nSELECT 1", "must be lowercase", 1),
        ("-- name: f\nSELECT FROM WHERE (", "does not parse", 1),
        ("-- name: f\nSELECT 1; SELECT 2", "exactly one SQL statement", 1),
        ("-- name: f\n-- only a comment\n", "has no SQL", 1),
        ("SELECT 1\n-- name: f\nSELECT 2", "before the first", 1),
        ("-- name: f\n-- param : int\nSELECT 1", "expected '-- param NAME: TYPE'", 2),
    ],
)
def test_bad_query_files_name_file_and_line(tmp_path: Path, text: str, message: str,
                                            line: int) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ProjectError) as caught:
        load_catalog(tmp_path / "queries")
    assert message in caught.value.message
    assert f"{path}:{line}" in caught.value.message


def test_duplicate_function_names_across_files(tmp_path: Path) -> None:
    write(tmp_path, "-- name: f\nSELECT 1", "a.sql")
    second = write(tmp_path, "\n\n-- name: f\nSELECT 2", "b.sql")
    with pytest.raises(ProjectError, match="duplicate function name 'f'") as caught:
        load_catalog(tmp_path / "queries")
    assert f"{second}:3" in caught.value.message
    assert "a.sql:1" in caught.value.message


CONFIG = """\
database:
  url: postgresql://gateway@localhost/prod
secret_key: $env:QG_TEST_SECRET
classification:
  public.customers:
    subject: customer
    columns:
      iban: [pii.financial]
roles:
  support:
    functions: [get_customer_by_id, "search_*"]
    fields:
      pii.financial: mask.last4
"""


def project(tmp_path: Path, config: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("QG_TEST_SECRET", "s" * 32)
    monkeypatch.delenv("QUERYGATE_DATABASE_URL", raising=False)
    write(tmp_path, GOOD)
    (tmp_path / "querygate.yaml").write_text(config)
    return tmp_path


def test_project_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = load_project(project(tmp_path, CONFIG, monkeypatch))
    assert loaded.secret_key == b"s" * 32
    assert loaded.roles["support"].grants("search_customers") == "search_*"
    assert loaded.classification.tags_of("public.customers.iban") == ("pii.financial",)
    assert list(loaded.catalog) == ["get_customer_by_id", "search_customers"]


def test_environment_overrides_database_url(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    folder = project(tmp_path, CONFIG, monkeypatch)
    monkeypatch.setenv("QUERYGATE_DATABASE_URL", "postgresql://other@host/db")
    assert load_project(folder).database_url == "postgresql://other@host/db"


@pytest.mark.parametrize(
    ("change", "message", "line"),
    [
        (("pii.financial: mask.last4", "pii.unknown: mask.last4"), "tag 'pii.unknown'", 13),
        (("pii.financial: mask.last4", "pii.financial: scramble"), "'scramble' is not a decision",
         13),
        (('"search_*"', "delete_everything"), "matches no function", 11),
        (("secret_key: $env:QG_TEST_SECRET", "secret_key: $env:QG_NOT_SET"), "QG_NOT_SET", 3),
        (("secret_key: $env:QG_TEST_SECRET", "secret_key: short"), "at least 16", 3),
        (("    subject: customer", "    subject: customer\n    sbuject: x"), "unknown key 'sbuject'",
         7),
    ],
)
def test_bad_config_names_the_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   change: tuple[str, str], message: str, line: int) -> None:
    folder = project(tmp_path, CONFIG.replace(*change), monkeypatch)
    with pytest.raises(ProjectError) as caught:
        load_project(folder)
    assert message in caught.value.message
    assert f"querygate.yaml:{line}" in caught.value.message


def test_missing_project_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="querygate init"):
        load_project(tmp_path)
