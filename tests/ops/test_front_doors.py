"""A statement through the PostgreSQL front door is counted under client="postgres"."""

from __future__ import annotations

from prometheus_client import REGISTRY, generate_latest

from tests.demo_env import Demo
from tests.ops.test_metrics import samples, value
from tests.pgwire.conftest import start_front, stop_front


def test_psql_statements_are_counted_as_the_postgres_front_door(demo: Demo) -> None:
    labels = {"function": "get_customer_by_id", "decision": "allowed", "code": "ok",
              "client": "postgres"}
    before = value(samples(generate_latest(REGISTRY).decode()), "querygate_calls_total", **labels)
    front = start_front(demo)
    try:
        with front.connect("alice") as conn:
            conn.execute("SET querygate.reason = 'TICKET-5'")
            for customer in (5, 6):
                rows = conn.execute("SELECT * FROM get_customer_by_id(%s)", (customer,)).fetchall()
                assert rows and rows[0][0] == customer
    finally:
        stop_front(front)
    after = samples(generate_latest(REGISTRY).decode())
    assert value(after, "querygate_calls_total", **labels) - before == 2
    text = generate_latest(REGISTRY).decode()
    assert demo.token("alice") not in text and "alice@example.com" not in text
