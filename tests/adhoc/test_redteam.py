"""Ad-hoc SQL as an attacker writes it: nothing observable depends on a value the caller may
not see. Each attack runs twice, against person 7 and person 8, whose protected values differ
and whose masks agree; the two answers must be byte-identical (status, body, rows), and no
planted value may appear in any answer or in the gateway's log."""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import time

import httpx
import psycopg
import pytest

from querygate.gateway import Gateway
from tests.adhoc.conftest import CANARIES, TRUTH, RedTeam

pytestmark = pytest.mark.anyio

# Predicates that hold for person 7's real values and not for person 8's.
PREDICATES = [
    "substr(ssn, 1, 1) = '5'",
    "ssn LIKE '518%'",
    "substr(iban, 1, 2) = 'GB'",
    "'x' || substr(iban, 3, 4) = 'x29NW'",
    "reverse(iban) LIKE '9186%' AND length(iban) = 22",
    "split_part(email, '@', 1) = 'zora.quill'",
    "'x@' || split_part(email, '@', 1) = 'x@zora.quill'",
    "to_char(born, 'MMDD') = '1127'",
    "extract(month FROM born) = 11",
    "NULLIF(substr(ssn, 2, 1), '1') IS NOT NULL",
    "md5(ssn) = md5('518-27-3904')",
    "length(email) = 20",
]

# Places an attacker hides a predicate: errors, row counts, row sets, ordering, time.
TEMPLATES = [
    "SELECT 1/(CASE WHEN {p} THEN 0 ELSE 1 END) AS x FROM staff WHERE id = {id}",
    "SELECT CASE WHEN {p} THEN 'nope'::int ELSE 1 END AS x FROM staff WHERE id = {id}",
    "SELECT regexp_replace('a', CASE WHEN {p} THEN '(' ELSE 'a' END, 'b') FROM staff "
    "WHERE id = {id}",
    "SELECT jsonb_path_query('{{}}', (CASE WHEN {p} THEN '$.[' ELSE '$.a' END)::jsonpath) "
    "FROM staff WHERE id = {id}",
    "SELECT count(*) AS n FROM staff s, generate_series(1, CASE WHEN {p} THEN 5 ELSE 1 END) g "
    "WHERE s.id = {id}",
    "SELECT 1 AS one FROM staff WHERE id = {id} AND {p}",
    "SELECT id FROM staff WHERE id > 9 ORDER BY id "
    "LIMIT (SELECT CASE WHEN {p} THEN 1 ELSE 3 END FROM staff WHERE id = {id})",
    "SELECT id FROM staff WHERE id > 9 ORDER BY id "
    "OFFSET (SELECT CASE WHEN {p} THEN 0 ELSE 2 END FROM staff WHERE id = {id}) LIMIT 2",
    "SELECT 1 AS one WHERE EXISTS (SELECT 1 FROM staff WHERE id = {id} AND {p})",
    "SELECT x FROM (SELECT 1 AS x UNION SELECT 2 FROM staff WHERE id = {id} AND {p}) u "
    "ORDER BY x",
    "SELECT 1 AS x EXCEPT SELECT 1 FROM staff WHERE id = {id} AND {p}",
    "SELECT DISTINCT CASE WHEN {p} THEN 'a' ELSE 'b' END AS d FROM staff WHERE id = {id}",
    "SELECT sum(CASE WHEN {p} THEN 1 ELSE 0 END) AS s FROM staff WHERE id = {id}",
    "SELECT count(*) AS n FROM staff s JOIN LATERAL (SELECT id FROM visits "
    "WHERE staff_id = s.id AND {p}) v ON true WHERE s.id = {id}",
    "WITH m AS MATERIALIZED (SELECT 1/(CASE WHEN {p} THEN 0 ELSE 1 END) AS x FROM staff "
    "WHERE id = {id}) SELECT count(*) AS n FROM m",
    "SELECT (SELECT array_agg(g) FROM generate_series(1, length(CASE WHEN {p} THEN 'aaaa' "
    "ELSE 'a' END)) g) AS a FROM staff WHERE id = {id}",
    "SELECT id FROM staff WHERE id IN (7, 8) ORDER BY CASE WHEN {p} THEN 0 ELSE 1 END, id",
    "SELECT string_agg(substr(ssn, 1, 3) || iban || email || born::text, ',') AS all_of_it "
    "FROM staff WHERE id = {id} AND ({p} OR true)",
]


def _seen(response: httpx.Response) -> tuple[int, object]:
    """What the caller observes, less the audit receipt (new for every call)."""
    body = response.json()
    for key in ("audit_id", "receipt"):
        body.pop(key, None)
    return response.status_code, body


async def _sql(client: httpx.AsyncClient, token: str, statement: str) -> httpx.Response:
    return await client.post("/v1/sql", json={"sql": statement, "reason": "RT-1"},
                             headers={"Authorization": f"Bearer {token}"})


def _no_canary(text: str) -> None:
    for canary in CANARIES:
        assert canary not in text, f"{canary!r} left the gateway"


@pytest.mark.parametrize("template", TEMPLATES)
async def test_no_predicate_on_a_masked_value_changes_what_the_caller_sees(
        served: tuple[Gateway, httpx.AsyncClient], redteam: RedTeam, template: str,
        caplog: pytest.LogCaptureFixture) -> None:
    _, client = served
    caplog.set_level(logging.DEBUG)
    outcomes, refused = set(), []
    for predicate in PREDICATES:
        seven = await _sql(client, redteam.analyst, template.format(p=predicate, id=7))
        eight = await _sql(client, redteam.analyst, template.format(p=predicate, id=8))
        assert seven.status_code < 500 and eight.status_code < 500, seven.text
        assert _seen(seven) == _seen(eight), (predicate, seven.text, eight.text)
        _no_canary(seven.text + eight.text)
        outcomes.add(seven.status_code)
        if seven.status_code == 403:
            refused.append((predicate, seven.json()["error"]["message"]))
    _no_canary(caplog.text)
    assert outcomes <= {200, 422}, refused


async def test_the_ssn_cannot_be_recovered_digit_by_digit(
        served: tuple[Gateway, httpx.AsyncClient], redteam: RedTeam) -> None:
    """The nine-request attack: a different error per digit would name it."""
    _, client = served
    recovered = ""
    for position in (1, 2, 3):
        answers = {}
        for digit in "0123456789":
            statement = (f"SELECT 1/(CASE WHEN substr(ssn, {position}, 1) = '{digit}' THEN 0 "
                         "ELSE 1 END) AS x FROM staff WHERE id = 7")
            answers[digit] = json.dumps(_seen(await _sql(client, redteam.analyst, statement)))
        distinct = set(answers.values())
        if len(distinct) > 1:  # one answer stands out: that digit is leaked
            recovered += next(d for d, a in answers.items() if list(answers.values()).count(a) == 1)
    assert recovered == ""
    assert not TRUTH["ssn"].startswith(recovered) or recovered == ""


@pytest.mark.parametrize("statement", [
    "SELECT salary FROM staff WHERE id = 7",
    "SELECT id FROM staff WHERE salary > 100000",
    "SELECT id FROM staff ORDER BY salary LIMIT 1",
    "SELECT count(*) FROM staff WHERE id = 7 AND salary BETWEEN 1 AND 200000",
    "SELECT id FROM staff LIMIT (SELECT salary FROM staff WHERE id = 7)",
    "SELECT * FROM staff WHERE id = 7",
    "SELECT row_to_json(s) FROM staff s WHERE id = 7",
    "SELECT 1 FROM generate_series(1, (SELECT salary FROM staff WHERE id = 7) % 3)",
])
async def test_a_denied_column_anywhere_is_refused_before_it_runs(
        served: tuple[Gateway, httpx.AsyncClient], redteam: RedTeam, statement: str) -> None:
    _, client = served
    response = await _sql(client, redteam.analyst, statement)
    assert response.status_code in (403, 422), response.text
    _no_canary(response.text)
    assert TRUTH["salary"] not in response.text


@pytest.mark.parametrize("statement", [
    "SELECT pg_sleep(1)", "SELECT \"pg_sleep\"(1)", "SELECT pg_catalog.\"pg_sleep\"(1)",
    "SELECT pg_catalog.pg_sleep_for('1 second')", "SELECT pg_sleep_until(now())",
    "SELECT \"set_config\"('search_path', 'nowhere', false)",
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "SELECT pg_try_advisory_lock(1)", "SELECT pg_advisory_lock(7)",
    "SELECT lo_from_bytea(0, 'x')", "SELECT pg_notify('leak', 'x')",
    "SELECT * FROM ts_stat('SELECT to_tsvector(ssn) FROM staff')",
    "SELECT query_to_xml('SELECT ssn FROM staff', true, true, '')",
    "SELECT current_setting('search_path')", "SELECT random()",
    "SELECT * FROM pg_stats WHERE tablename = 'staff'",
    "SELECT * FROM pg_catalog.pg_stats", "SELECT * FROM information_schema.columns",
    "SELECT * FROM querygate.users", "SELECT * FROM querygate.tokens",
    "SELECT * FROM querygate_masked.mask_keys",
    "SELECT * FROM querygate_masked.\"public.staff\"",
    "SELECT pg_read_file('/etc/passwd')", "SELECT nextval('visits_id_seq')",
    "SELECT * FROM staff TABLESAMPLE BERNOULLI (50)",
])
async def test_effects_timing_and_text_as_sql_are_refused(
        served: tuple[Gateway, httpx.AsyncClient], redteam: RedTeam, statement: str) -> None:
    _, client = served
    started = time.monotonic()
    response = await _sql(client, redteam.analyst, statement)
    assert response.status_code in (403, 422), response.text
    assert time.monotonic() - started < 0.9  # nothing slept
    _no_canary(response.text)


async def test_expensive_expressions_cost_the_same_for_either_value(
        served: tuple[Gateway, httpx.AsyncClient], redteam: RedTeam) -> None:
    """Work chosen per value runs on the mask: three million rows or one, it is the same."""
    _, client = served
    heavy = ("SELECT count(*) AS n FROM staff s, generate_series(1, CASE WHEN "
             "substr(ssn, 1, 1) = '5' THEN 3000000 ELSE 1 END) g WHERE s.id = {id}")
    times: dict[int, list[float]] = {7: [], 8: []}
    answers = {}
    for _ in range(3):
        for who in (7, 8):
            started = time.monotonic()
            answers[who] = _seen(await _sql(client, redteam.analyst, heavy.format(id=who)))
            times[who].append(time.monotonic() - started)
    assert answers[7] == answers[8] == (200, answers[7][1])
    assert answers[7][1]["rows"] == [[1]]  # type: ignore[index]
    seven, eight = statistics.median(times[7]), statistics.median(times[8])
    assert seven < 0.5 and abs(seven - eight) < 0.25  # 3 million rows would take seconds


async def test_masks_are_computed_at_the_source_and_agree_with_named_functions(
        served: tuple[Gateway, httpx.AsyncClient], redteam: RedTeam) -> None:
    _, client = served
    shown = await _sql(client, redteam.analyst, "SELECT ssn, iban, email, born, upper(iban) "
                       "AS loud, reverse(iban) AS back FROM staff WHERE id = 7")
    assert shown.status_code == 200, shown.text
    row = dict(zip(shown.json()["columns"], shown.json()["rows"][0], strict=True))
    assert row == {"ssn": "****", "iban": "****6819", "email": "z***@corp.test", "born": 1983,
                   "loud": "****6819", "back": "9186****"}
    assert shown.json()["fields"]["back"] == "mask.last4"
    hashed = await _sql(client, redteam.hasher, "SELECT ssn FROM staff WHERE id = 7")
    named = await client.post("/v1/call/staff_ssn", json={"params": {"staff_id": 7}},
                              headers={"Authorization": f"Bearer {redteam.hasher}"})
    assert hashed.status_code == named.status_code == 200, hashed.text + named.text
    assert hashed.json()["rows"][0][0] == named.json()["rows"][0][1]
    assert hashed.json()["rows"][0][0].startswith("h:")
    omitted = await _sql(client, redteam.hasher, "SELECT id, salary FROM staff WHERE id = 7")
    assert omitted.status_code == 200 and omitted.json()["columns"] == ["id"]


async def test_views_are_read_through_the_masks(
        served: tuple[Gateway, httpx.AsyncClient], redteam: RedTeam) -> None:
    _, client = served
    response = await _sql(client, redteam.analyst,
                          "SELECT iban, email FROM staff_cards WHERE id = 7")
    assert response.status_code == 200, response.text
    assert response.json()["rows"] == [["****6819", "z***@corp.test"]]


async def test_the_callers_sql_never_reaches_the_log(
        served: tuple[Gateway, httpx.AsyncClient], redteam: RedTeam,
        caplog: pytest.LogCaptureFixture) -> None:
    _, client = served
    caplog.set_level(logging.DEBUG)
    for statement in ("VACUUM staff_secret_literal_1", "SELECT 1; SELECT 'secret_literal_2'",
                      "SELECT 'secret_literal_3' FROM nowhere"):
        response = await _sql(client, redteam.analyst, statement)
        assert response.status_code in (403, 422)
    assert "secret_literal" not in caplog.text


@pytest.mark.parametrize(("condition", "rows"), [
    ("ssn = '518-27-3904'", [[7]]),
    ("s.ssn = '518-27-3904'", [[7]]),
    ("'518-27-3904' = ssn", [[7]]),
    ("ssn IN ('000-00-0000', '623-11-0457')", [[8]]),
    ("ssn = '518-27-3905'", []),
    ("ssn = '518-27-3904' AND email = 'zora.quill@corp.test'", [[7]]),
    ("ssn = '518-27-3904' AND email = 'zeno.baker@corp.test'", []),
    ("ssn LIKE '518%'", []),  # match is equality with a literal, nothing more
    ("upper(ssn) = '518-27-3904'", []),
    ("ssn = '518-27-3904' OR id = 0", []),  # only a top-level AND term compares the value
])
async def test_match_compares_for_equality_with_a_literal_and_nothing_more(
        served: tuple[Gateway, httpx.AsyncClient], redteam: RedTeam, condition: str,
        rows: list[list[int]]) -> None:
    _, client = served
    response = await _sql(client, redteam.matcher,
                          f"SELECT s.id, s.ssn FROM staff s WHERE {condition} ORDER BY s.id")
    assert response.status_code == 200, response.text
    assert [r[:1] for r in response.json()["rows"]] == rows
    assert all(r[1] == "****" for r in response.json()["rows"])
    _no_canary(response.text)


async def test_grouping_by_a_key_still_reads_the_rest_of_the_row(
        served: tuple[Gateway, httpx.AsyncClient], redteam: RedTeam) -> None:
    """PostgreSQL lets GROUP BY a primary key read the row's other columns; the masked
    source keeps that working."""
    _, client = served
    response = await _sql(client, redteam.analyst,
                          "SELECT s.id, s.name, s.iban, count(v.id) AS visits FROM staff s "
                          "JOIN visits v ON v.staff_id = s.id WHERE s.id = 7 GROUP BY s.id "
                          "ORDER BY s.name")
    assert response.status_code == 200, response.text
    assert response.json()["rows"] == [[7, "Ines", "****6819", 1]]


async def test_a_nul_in_the_sql_is_refused_and_recorded_without_failing_other_calls(
        served: tuple[Gateway, httpx.AsyncClient], redteam: RedTeam) -> None:
    """The statement is audited as sent; a NUL in it must neither be lost from the log nor,
    batched with honest calls, fail them."""
    _, client = served
    hostile = "SELECT id FROM staff WHERE id = 7\x00; SELECT ssn FROM staff"
    honest = "SELECT id FROM staff WHERE id = 7"
    answers = await asyncio.gather(_sql(client, redteam.analyst, hostile),
                                   *(_sql(client, redteam.analyst, honest) for _ in range(8)))
    assert answers[0].status_code in (403, 422), answers[0].text
    assert all(a.status_code == 200 for a in answers[1:]), [a.text for a in answers[1:]]
    _no_canary(answers[0].text)
    with psycopg.connect(redteam.admin_url) as conn:
        rows = conn.execute("SELECT decision FROM querygate.audit_events WHERE "
                            "parameters::text LIKE %s", ("%id = 7\\\\u0000; SELECT ssn%",)).fetchall()
    assert len(rows) == 1 and rows[0][0] in ("denied", "error"), rows
