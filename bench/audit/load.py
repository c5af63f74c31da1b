"""Fill an audit log with synthetic events: N events from U users over M months, a valid chain.

The bulk path: events are built as ``AuditEvent``; their canonical bytes come from orjson with
sorted keys (tests/audit/test_verify_paths.py shows these equal the reference encoding for
every float-free content), are hashed, linked exactly as the database's ``audit_chain`` trigger
links them (seq, prev_hash, hash), and streamed with COPY into the month partitions and the
subject index. ``audit verify`` afterwards checks every event with the reference rules. The chain
trigger is switched off for the load and switched back on (ENABLE ALWAYS) after; the head row
is moved with every batch, so the log verifies at any point. Needs a superuser URL.

    .venv/bin/python -m bench.audit.load --url postgresql://postgres@127.0.0.1/bench \\
        --events 10000000 --users 200 --months 24 --setup
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import time
import uuid
from collections.abc import Iterator

import orjson
import psycopg
from psycopg.types.json import Json, set_json_dumps

from bench.harness.cli import arguments
from querygate.audit import AuditEvent, link
from querygate.provision import setup_database

FUNCTIONS = [
    ("get_customer_by_id", 1, {"full_name": "allow", "email": "allow", "iban": "mask.last4",
                               "ssn": "omit", "date_of_birth": "mask.year"}),
    ("list_customer_orders", 1, {"order_id": "allow", "amount": "allow"}),
    ("list_customer_tickets", 1, {"subject": "allow", "assignee_email": "mask.email"}),
    ("get_order_by_id", 1, {"order_id": "allow", "iban": "mask.last4"}),
    ("search_customers", 4, {"full_name": "allow", "email": "allow", "country": "allow"}),
    ("list_payments", 2, {"amount": "allow", "card_last4": "mask.full"}),
]
ROLES = [("support",), ("billing",), ("compliance",), ("support", "billing")]
EVENT_COLUMNS = ("seq, event_id, occurred_at, actor_id, actor_email, actor_roles, function_name, "
                 "parameters, decision, reason, error_code, rows_returned, fields, subjects, "
                 "client_addr, duration_us, context, policy_version, content_hash, prev_hash, hash")


def month_starts(months: int, end: dt.datetime) -> list[dt.datetime]:
    first = dt.datetime(end.year, end.month, 1, tzinfo=dt.UTC)
    starts = []
    for back in range(months - 1, -1, -1):
        year, month = divmod(first.year * 12 + first.month - 1 - back, 12)
        starts.append(dt.datetime(year, month + 1, 1, tzinfo=dt.UTC))
    return starts


def events(count: int, users: int, customers: int, start: dt.datetime, end: dt.datetime,
           seed: int) -> Iterator[AuditEvent]:
    """``count`` events spread evenly over [start, end), in time order."""
    rng = random.Random(seed)
    span_us = int((end - start).total_seconds() * 1_000_000)
    step = span_us / count
    for n in range(count):
        when = start + dt.timedelta(microseconds=int(n * step + rng.random() * step))
        user = rng.randrange(users)
        function, subjects, fields = FUNCTIONS[rng.randrange(len(FUNCTIONS))]
        picked = tuple(("customer", str(rng.randrange(1, customers + 1)))
                       for _ in range(rng.randint(1, subjects)))
        roll = rng.random()
        decision = "allowed" if roll < 0.95 else "denied" if roll < 0.99 else "error"
        yield AuditEvent(
            occurred_at=when, function_name=function, decision=decision,
            actor_id=f"usr_{user:04d}", actor_email=f"user{user:04d}@example.com",
            actor_roles=ROLES[user % len(ROLES)], parameters={"customer_id": int(picked[0][1])},
            reason=f"TICKET-{rng.randrange(100000)}" if rng.random() < 0.7 else None,
            error_code=None if decision == "allowed" else ("policy_denied" if decision == "denied"
                                                           else "statement_timeout"),
            rows_returned=len(picked) if decision == "allowed" else 0,
            fields=fields if decision == "allowed" else {},
            subjects=picked if decision == "allowed" else (),
            client_addr=f"10.0.{user % 250}.{user % 7 + 1}", duration_us=rng.randrange(500, 90000),
            policy_version="pv-bench-1", event_id=uuid.UUID(int=rng.getrandbits(128), version=4),
        )


def prepare(conn: psycopg.Connection[object], starts: list[dt.datetime]) -> tuple[int, bytes]:
    for month in starts:
        conn.execute("SELECT querygate.audit_add_month(%s::date)", (month.date(),))
    conn.execute("ALTER TABLE querygate.audit_events DISABLE TRIGGER audit_events_chain")
    row = conn.execute("SELECT seq, hash FROM querygate.audit_head WHERE id = 1").fetchone()
    assert isinstance(row, tuple)
    conn.commit()
    return int(row[0]), bytes(row[1])


def load_batch(conn: psycopg.Connection[object], batch: list[AuditEvent], seq: int,
               prev: bytes) -> tuple[int, bytes]:
    """COPY one batch of events and their subjects, move the head, commit."""
    with conn.cursor() as cur:
        with cur.copy(f"COPY querygate.audit_events ({EVENT_COLUMNS}) FROM STDIN") as copy:
            subject_rows = []
            for event in batch:
                seq += 1
                content = event.content()
                content_hash = hashlib.sha256(
                    orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).digest()
                digest = link(prev, seq, content_hash)
                copy.write_row((
                    seq, event.event_id, event.occurred_at, event.actor_id, event.actor_email,
                    list(event.actor_roles), event.function_name, Json(content["parameters"]),
                    event.decision, event.reason, event.error_code, event.rows_returned,
                    Json(content["fields"]), Json(content["subjects"]), event.client_addr,
                    event.duration_us, Json(content["context"]), event.policy_version,
                    content_hash, prev, digest))
                subject_rows += [(t, i, event.occurred_at, seq) for t, i in dict.fromkeys(event.subjects)]
                prev = digest
        with cur.copy("COPY querygate.audit_subjects (subject_type, subject_id, occurred_at, seq) "
                      "FROM STDIN") as copy:
            for subject_row in subject_rows:
                copy.write_row(subject_row)
        cur.execute("UPDATE querygate.audit_head SET seq = %s, hash = %s WHERE id = 1", (seq, prev))
    conn.commit()
    return seq, prev


def main() -> None:
    parser = arguments(__doc__, __spec__)
    parser.add_argument("--url", required=True, help="superuser URL of the database to fill")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--setup", action="store_true", help="run querygate's setup first")
    args = parser.parse_args()
    if args.setup:
        setup_database(args.url)
    end = dt.datetime.now(dt.UTC).replace(microsecond=0)
    starts = month_starts(args.months, end)
    started = time.monotonic()
    with psycopg.connect(args.url) as conn:
        # the documents' canonical text, as the gateway writes it (json keeps it verbatim)
        set_json_dumps(lambda value: orjson.dumps(value, option=orjson.OPT_SORT_KEYS), conn)
        conn.execute("SET synchronous_commit = off")
        seq, prev = prepare(conn, starts)
        if seq:
            raise SystemExit(f"the log already holds {seq} events; load into an empty one")
        batch: list[AuditEvent] = []
        for event in events(args.events, args.users, args.customers, starts[0], end, args.seed):
            batch.append(event)
            if len(batch) == args.batch:
                seq, prev = load_batch(conn, batch, seq, prev)
                batch = []
                rate = seq / (time.monotonic() - started)
                print(f"{seq:>10} events  {rate:8.0f}/s", flush=True)
        if batch:
            seq, prev = load_batch(conn, batch, seq, prev)
        conn.execute("ALTER TABLE querygate.audit_events ENABLE ALWAYS TRIGGER audit_events_chain")
        conn.commit()
    with psycopg.connect(args.url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) querygate.audit_events, querygate.audit_subjects")
    elapsed = time.monotonic() - started
    print(f"loaded {seq} events in {elapsed:.0f} s ({seq / elapsed:.0f}/s), "
          f"head {prev.hex()}; vacuumed and analysed")


if __name__ == "__main__":
    main()
