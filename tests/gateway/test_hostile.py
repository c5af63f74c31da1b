"""Hostile parameter values: 422 or a correct result, never a 500, never a changed query."""

from __future__ import annotations

import httpx
import psycopg
import pytest

from querygate.demo import CANARIES
from tests.demo_env import Demo, call

pytestmark = pytest.mark.anyio

HOSTILE_TEXT = [
    "'; DROP TABLE customers; --",
    "\nWHERE false --",
    "%' OR '1'='1",
    "canary' UNION SELECT ssn FROM customers --",
    "$1",
    "%(email_prefix)s",
    ":email_prefix",
    "\\",
    "😀" * 100,
]


@pytest.mark.parametrize("value", HOSTILE_TEXT)
async def test_hostile_text_is_bound_not_interpolated(client: httpx.AsyncClient, demo: Demo,
                                                      value: str) -> None:
    response = await call(client, demo.token("alice"), "search_customers", {"email_prefix": value})
    assert response.status_code == 200, response.text
    assert response.json()["rows"] == []
    assert CANARIES["ssn"] not in response.text
    with psycopg.connect(demo.admin_url) as conn:
        assert conn.execute("SELECT count(*) FROM customers").fetchone() == (400,)


@pytest.mark.parametrize("params", [
    {"email_prefix": "a\x00b"},
    {"email_prefix": "x" * 1_000_000},
    {"email_prefix": 1},
    {"email_prefix": None},
    {"email_prefix": ["a"]},
    {"email_prefix": {"$ne": 1}},
])
async def test_bad_values_are_422_naming_the_parameter(client: httpx.AsyncClient, demo: Demo,
                                                       params: dict[str, object]) -> None:
    response = await call(client, demo.token("alice"), "search_customers", params)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["parameter"] == "email_prefix"


@pytest.mark.parametrize("body", [
    b'{"params": {"customer_id": NaN}}',
    b'{"params": {"customer_id": Infinity}}',
    b'{"params": {"customer_id": 99999999999999999999999999}}',
    b'{"params": {"customer_id": 1e400}}',
    b'\xff\xfe{"params": {}}',
    b'{"params": {"customer_id": "\xed\xa0\x80"}}',
    b"[" * 10000 + b"]" * 10000,
    b'{"params": ' + b'{"a":' * 2000 + b"1" + b"}" * 2001,
    b"not json",
    b'{"params": {"customer_id": 1}, "sneaky": true}',
    b'"just a string"',
])
async def test_malformed_bodies_are_4xx(client: httpx.AsyncClient, demo: Demo,
                                        body: bytes) -> None:
    response = await client.post("/v1/call/get_customer_by_id", content=body,
                                 headers={"Authorization": f"Bearer {demo.token('alice')}",
                                          "Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert "error" in response.json()


async def test_oversized_body_is_413(client: httpx.AsyncClient, demo: Demo) -> None:
    response = await client.post(
        "/v1/call/search_customers", content=b'{"params": {"email_prefix": "' + b"a" * 2_000_000
        + b'"}}', headers={"Authorization": f"Bearer {demo.token('alice')}"})
    assert response.status_code == 413


async def test_hostile_function_names(client: httpx.AsyncClient, demo: Demo) -> None:
    for name in ["get_customer_by_id;DROP", "..%2F..%2Fetc", "x" * 5000, "%00"]:
        response = await call(client, demo.token("alice"), name, {})
        assert response.status_code in (404, 405), (name, response.status_code)
