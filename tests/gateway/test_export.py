"""Streamed exports: masked in chunks, audited (with every subject) before the first byte."""

from __future__ import annotations

import json

import httpx
import psycopg
import pytest

from querygate.demo import CANARIES
from tests.demo_env import Demo

pytestmark = pytest.mark.anyio


async def export(client: httpx.AsyncClient, token: str, function: str,
                 params: dict[str, object]) -> tuple[int, list[object]]:
    response = await client.post(f"/v1/export/{function}", json={"params": params,
                                                                   "reason": "EXPORT-1"},
                                 headers={"Authorization": f"Bearer {token}"})
    if response.status_code != 200:
        return response.status_code, [response.json()]
    return 200, [json.loads(line) for line in response.text.splitlines()]


async def test_export_is_masked_and_audited_with_every_subject(client: httpx.AsyncClient,
                                                              demo: Demo) -> None:
    status, lines = await export(client, demo.token("bob"), "customers_created_between",
                                 {"from_date": "2000-01-01", "to_date": "2030-01-01"})
    assert status == 200
    header, rows = lines[0], lines[1:]
    assert isinstance(header, dict) and header["rows"] == len(rows) == 400
    assert header["columns"][0] == "id"
    assert sorted(row[0] for row in rows) == list(range(1, 401))  # type: ignore[index]
    with psycopg.connect(demo.admin_url) as conn:
        event = conn.execute("SELECT rows_returned, json_array_length(subjects), decision "
                             "FROM querygate.audit_events WHERE event_id = %s",
                             (header["audit_id"],)).fetchone()
    assert event == (400, 400, "allowed")


async def test_export_follows_the_same_policy(client: httpx.AsyncClient, demo: Demo) -> None:
    status, _ = await export(client, demo.token("alice"), "revenue_by_plan",
                             {"since": "2024-01-01"})
    assert status == 403
    status, _ = await export(client, demo.token("alice"), "get_customer_by_id",
                                {"customer_id": "x"})
    assert status == 422
    status, lines = await export(client, demo.token("alice"), "get_customer_by_id",
                                 {"customer_id": 42})
    assert status == 200 and len(lines) == 2
    assert CANARIES["ssn"] not in json.dumps(lines)
    header, row = lines
    assert isinstance(header, dict) and "ssn" not in header["columns"]
    assert header["fields"]["iban"] == "mask.last4"
    assert row[header["columns"].index("iban")] == "****" + CANARIES["iban"][-4:]  # type: ignore[index]


async def test_export_without_rows(client: httpx.AsyncClient, demo: Demo) -> None:
    status, lines = await export(client, demo.token("alice"), "get_customer_by_id",
                                 {"customer_id": 999999})
    assert status == 200 and len(lines) == 1
    assert lines[0]["rows"] == 0  # type: ignore[index]
