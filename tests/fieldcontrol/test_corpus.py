"""Every lineage fixture case through `querygate check --json` and through ad-hoc SQL on a real
server, with canary values in every row: no tagged value may come back in clear."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from querygate.cli import main
from querygate.errors import QuerygateError
from querygate.gateway import Gateway
from querygate.identity import add_user, issue_token
from querygate.project import load_project
from querygate.provision import DEFAULT_GATEWAY_ROLE, setup_database, url_for
from tests.fieldcontrol.corpus import TAG, as_adhoc, create_schema, usable_cases, write_project


@pytest.fixture(scope="module")
def corpus(admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[Path, list[str], str]]:
    from tests.demo_env import create_database, drop_database

    name = create_database(admin_url)
    url = url_for(admin_url, dbname=name)
    canaries = create_schema(url)
    setup_database(url, read_schemas=("public", "hr"))
    folder = tmp_path_factory.mktemp("corpus")
    secret = folder / "secret"
    secret.write_text("corpus-secret-key-0123456789")
    gateway_url = url_for(url, user=DEFAULT_GATEWAY_ROLE)
    write_project(folder / "functions", gateway_url, secret)
    write_project(folder / "adhoc", gateway_url, secret, adhoc=True)
    yield folder, canaries, url
    drop_database(admin_url, name)


def test_the_corpus_is_large_enough() -> None:
    cases = usable_cases()
    assert len(cases) >= 120
    assert sum(1 for c in cases if c.error) >= 20


def test_check_json_reports_every_case_as_the_fixtures_expect(
        corpus: tuple[Path, list[str], str]) -> None:
    folder, _, _ = corpus
    result = CliRunner().invoke(main, ["check", "--json", "--project", str(folder / "functions")])
    report = json.loads(result.stdout)
    by_name = {f["name"]: f for f in report["functions"]}
    checked, refused_by_postgres = 0, []
    for case in usable_cases():
        if case.error or case.columns is None:
            continue
        fn = by_name[case.name]
        if any(p.startswith("PostgreSQL cannot prepare") for p in fn["problems"]):
            refused_by_postgres.append(case.id)  # invalid SQL lineage tolerated; PG refuses it
            continue
        assert not fn["problems"], (case.id, fn["problems"])
        assert len(fn["columns"]) == len(case.columns), case.id
        for got, want in zip(fn["columns"], case.columns, strict=True):
            if want.sources is not None:
                assert set(got["sources"]) == want.sources, (case.id, got)
            assert got["tags"] == ([TAG] if got["sources"] else []), (case.id, got)
        checked += 1
    assert checked >= 100
    assert len(refused_by_postgres) <= 5, refused_by_postgres


async def _adhoc_all(project: Path, url: str) -> list[tuple[str, int, str]]:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await add_user(conn, "probe@example.com", ["probe"])
        token, _ = await issue_token(conn, "probe@example.com")
    gw = await Gateway.open(load_project(project))
    seen: list[tuple[str, int, str]] = []
    try:
        for case in usable_cases():
            try:
                result = await gw.sql(token, as_adhoc(case), "corpus")
                seen.append((case.id, 200, json.dumps([result.columns, result.rows],
                                                      default=str)))
            except QuerygateError as exc:
                seen.append((case.id, exc.status, json.dumps(exc.to_json())))
    finally:
        await gw.close()
    return seen


def test_adhoc_calls_never_return_a_canary(corpus: tuple[Path, list[str], str]) -> None:
    folder, canaries, url = corpus
    seen = asyncio.run(_adhoc_all(folder / "adhoc", url_for(url, user=DEFAULT_GATEWAY_ROLE)))
    expected_errors = {c.id for c in usable_cases() if c.error}
    for case_id, status, body in seen:
        assert status != 500, (case_id, body)
        for value in canaries:
            assert value not in body, (case_id, value)
        if case_id in expected_errors:
            assert status in (403, 422), (case_id, status, body)
        if status == 502:
            assert "does not match its analysed lineage" not in body, (case_id, body)
    answered = [s for s in seen if s[1] == 200]
    assert len(answered) >= 100, [(c, s, b[:200]) for c, s, b in seen if s != 200][:20]
