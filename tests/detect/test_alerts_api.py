"""Alerts over HTTP: reviewers list, read (with the events behind) and acknowledge them."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import psycopg
import pytest

from querygate.detect import Alert, save_alert
from querygate.provision import setup_database
from tests.demo_env import Demo, call

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module", autouse=True)
def detect_tables(demo: Demo) -> Iterator[None]:
    setup_database(demo.admin_url, parts=("detect",), read_schemas=())
    yield


async def raise_one(demo: Demo, client: httpx.AsyncClient) -> str:
    seen = await call(client, demo.token("alice"), "get_customer_by_id", {"customer_id": 42},
                      reason="TICKET-1042")
    seq = str(seen.json()["receipt"]["seq"])
    async with await psycopg.AsyncConnection.connect(demo.gateway_url, autocommit=True) as conn:
        alice = await (await conn.execute("SELECT id FROM querygate.users WHERE email = %s",
                                          ("alice@example.com",))).fetchone()
        assert alice is not None
        alert = Alert(alice[0], "purpose.deep_look", "medium", "2026-03-02T10:00:00.000Z",
                      "customer:42 looked up 4 times in a day without a purpose",
                      f"purpose.deep_look:{alice[0]}:{seq}", {"lookups": 4}, {"threshold": 4},
                      (seq,), ("customer:42",))
        alert_id = await save_alert(conn, alert, webhook=False)
    assert alert_id is not None
    return alert_id


def bearer(demo: Demo, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {demo.token(name)}"}


async def test_reviewers_list_show_and_acknowledge(client: httpx.AsyncClient, demo: Demo) -> None:
    alert_id = await raise_one(demo, client)
    listed = await client.get("/v1/alerts", headers=bearer(demo, "carol"))
    assert listed.status_code == 200
    assert alert_id in [a["id"] for a in listed.json()["alerts"]]
    mine = await client.get("/v1/alerts", params={"user": "alice@example.com", "status": "all"},
                            headers=bearer(demo, "carol"))
    assert {a["id"] for a in mine.json()["alerts"]} >= {alert_id}
    shown = (await client.get(f"/v1/alerts/{alert_id}", headers=bearer(demo, "carol"))).json()
    assert shown["alert"]["rule"] == "purpose.deep_look"
    assert [e["function_name"] for e in shown["audit_events"]] == ["get_customer_by_id"]
    assert shown["audit_events"][0]["subjects"] == [{"type": "customer", "id": "42"}]
    no_note = await client.post(f"/v1/alerts/{alert_id}/ack", json={},
                                headers=bearer(demo, "carol"))
    assert no_note.status_code == 422 and no_note.json()["error"]["parameter"] == "note"
    done = await client.post(f"/v1/alerts/{alert_id}/ack", json={"note": "ticket was merged"},
                             headers=bearer(demo, "carol"))
    assert done.status_code == 200
    assert done.json()["alert"]["status"] == "acknowledged"
    assert done.json()["alert"]["acknowledged_by"] == "carol@example.com"
    still_open = await client.get("/v1/alerts", headers=bearer(demo, "carol"))
    assert alert_id not in [a["id"] for a in still_open.json()["alerts"]]


@pytest.mark.parametrize(("who", "path", "status", "code"), [
    ("alice", "/v1/alerts", 403, "policy_denied"),
    ("carol", "/v1/alerts?status=maybe", 422, "bad_parameters"),
    ("carol", "/v1/alerts?limit=0", 422, "bad_parameters"),
    ("carol", "/v1/alerts/alr_nope", 404, "not_found"),
])
async def test_refusals(client: httpx.AsyncClient, demo: Demo, who: str, path: str, status: int,
                        code: str) -> None:
    response = await client.get(path, headers=bearer(demo, who))
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


async def test_no_token_is_401(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/alerts")).status_code == 401
