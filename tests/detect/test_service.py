"""The online detector over a real audit log: the same alerts as the backtest, kept once."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import psycopg
import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st

from querygate import identity
from querygate.cli import main
from querygate.detect import DetectorService, backtest, list_alerts
from querygate.project import load_project
from tests.demo_env import running_server_process
from tests.detect.conftest import Store, append_all
from tests.detect.office import Office, moment, working

pytestmark = pytest.mark.anyio


def office_with_insiders() -> Office:
    office = Office(agents=4, per_day=10).honest(12)
    for k in range(4):  # a bulk export on day 10
        office.event(moment(10, 10 + k / 10), "a1", "search_customers",
                     [office.rng.randrange(10**6) for _ in range(50)])
    office.event(moment(11, 12), "a2", "get_customer_by_id", [7], reason="INC-1",
                 context={"break_glass": "true"})
    return office


async def drain(service: DetectorService, url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        while await service.step(conn):
            pass


async def stored_alerts(url: str) -> list[Any]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        return await list_alerts(conn, status=None, limit=1000)


async def cli(*args: str) -> Result:
    """The command line in a worker thread: it runs its own event loop."""
    return await anyio.to_thread.run_sync(lambda: CliRunner().invoke(main, list(args)))


def offline(lines: list[dict[str, Any]], service: DetectorService) -> set[tuple[str, str, str]]:
    encoded = [json.dumps(line).encode() for line in lines]
    return {(a.actor_id, a.rule, a.raised_at) for a in backtest(encoded, service.settings.rules)}


async def test_online_alerts_equal_the_backtest_and_are_kept_once(store: Store) -> None:
    lines = office_with_insiders().lines()
    service = DetectorService(store.project, webhook_client=httpx.AsyncClient(
        transport=httpx.MockTransport(lambda request: httpx.Response(200))))
    async with await psycopg.AsyncConnection.connect(store.gateway_url, autocommit=True) as conn:
        await service.catch_up(conn)  # an empty log: the cursor starts at 0
    await append_all(store.gateway_url, lines)
    await drain(service, store.gateway_url)
    online = {(a.alert.actor_id, a.alert.rule, a.alert.raised_at)
              for a in await stored_alerts(store.gateway_url)}
    assert online == offline(lines, service)
    assert {(actor, rule) for actor, rule, _ in online} >= {("a1", "volume.spike"),
                                                           ("a2", "break_glass")}
    restarted = DetectorService(store.project)  # replays silently, raises nothing twice
    await drain(restarted, store.gateway_url)
    assert len(await stored_alerts(store.gateway_url)) == len(online)
    assert restarted.raised == 0 and restarted.cursor == len(lines)
    with psycopg.connect(store.admin_url) as conn:
        assert conn.execute("SELECT seq FROM querygate.detect_cursor").fetchone() == (len(lines),)


async def test_webhook_is_retried_then_delivered(store: Store) -> None:
    seen: list[dict[str, Any]] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(500 if len(seen) == 1 else 200)

    service = DetectorService(store.project, webhook_client=httpx.AsyncClient(
        transport=httpx.MockTransport(receiver)))
    async with await psycopg.AsyncConnection.connect(store.gateway_url, autocommit=True) as conn:
        await service.catch_up(conn)
    await append_all(store.gateway_url, office_with_insiders().lines())
    await drain(service, store.gateway_url)
    refused = seen[0]["querygate"]["id"]  # the alert whose first delivery got HTTP 500
    first = {a.id: a for a in await stored_alerts(store.gateway_url)}
    if first[refused].webhook_status == "pending":  # not retried yet while draining
        assert first[refused].webhook_attempts == 1
        assert first[refused].webhook_error == "HTTP 500"
        async with await psycopg.AsyncConnection.connect(store.gateway_url,
                                                         autocommit=True) as conn:
            await conn.execute("SELECT pg_sleep(0.05)")
            assert service.sender is not None
            assert await service.sender.deliver(conn) == 1
    again = {a.id: a for a in await stored_alerts(store.gateway_url)}
    assert again[refused].webhook_status == "sent"
    assert again[refused].webhook_attempts == 2
    assert sum(1 for body in seen if body["querygate"]["id"] == refused) == 2
    assert all("text" in body and "blocks" in body for body in seen)
    assert any(body["querygate"]["rule"] == "volume.spike" for body in seen)


async def test_a_high_alert_suspends_and_ack_reinstates(store: Store) -> None:
    async with await psycopg.AsyncConnection.connect(store.gateway_url, autocommit=True) as conn:
        user = await identity.add_user(conn, "mallory@example.com", ["support"])
        await identity.issue_token(conn, "mallory@example.com")
    office = Office(agents=2, per_day=10).honest(8)
    for k in range(3):
        office.event(moment(7, 10 + k / 10), "a0", "search_customers",
                     [office.rng.randrange(10**6) for _ in range(50)])
    lines = [{**line, "actor_id": user.id if line["actor_id"] == "a0" else line["actor_id"]}
             for line in office.lines()]
    service = DetectorService(store.project, webhook_client=httpx.AsyncClient(
        transport=httpx.MockTransport(lambda request: httpx.Response(200))))
    async with await psycopg.AsyncConnection.connect(store.gateway_url, autocommit=True) as conn:
        await service.catch_up(conn)
    await append_all(store.gateway_url, lines)
    await drain(service, store.gateway_url)
    [alert] = [a for a in await stored_alerts(store.gateway_url) if a.alert.actor_id == user.id]
    assert alert.alert.rule == "volume.spike" and alert.actions == ("suspended",)
    with psycopg.connect(store.admin_url) as conn:
        assert conn.execute("SELECT status FROM querygate.users WHERE id = %s",
                            (user.id,)).fetchone() == ("suspended",)
    project = ("--project", str(store.project.root))
    result = await cli("alerts", "ack", alert.id, "--note", "checked: a real export request",
                       "--by", "carol@example.com", "--reinstate", *project)
    assert result.exit_code == 0, result.output
    assert "active again" in result.output
    with psycopg.connect(store.admin_url) as conn:
        assert conn.execute("SELECT status FROM querygate.users WHERE id = %s",
                            (user.id,)).fetchone() == ("active",)
    listed = await cli("alerts", "list", "--status", "all", "--json", *project)
    [row] = [json.loads(x) for x in listed.output.splitlines() if user.id in x]
    assert row["status"] == "acknowledged" and row["acknowledged_by"] == "carol@example.com"
    assert row["actions"] == ["suspended", "reinstated by carol@example.com"]
    shown = await cli("alerts", "show", alert.id, *project)
    assert "volume.spike" in shown.output and "search_customers" in shown.output


async def test_one_detector_at_a_time(store: Store) -> None:
    first, second = DetectorService(store.project), DetectorService(store.project)
    async with await psycopg.AsyncConnection.connect(store.gateway_url, autocommit=True) as a, \
            await psycopg.AsyncConnection.connect(store.gateway_url, autocommit=True) as b:
        assert await first._locked(a)
        assert not await second._locked(b)


async def test_alerts_cannot_be_deleted(store: Store) -> None:
    service = DetectorService(store.project)
    async with await psycopg.AsyncConnection.connect(store.gateway_url, autocommit=True) as conn:
        await service.catch_up(conn)
    office = Office(agents=1, per_day=2).honest(1)
    office.event(moment(0, 12), "a0", "get_customer_by_id", [1], context={"break_glass": "true"})
    await append_all(store.gateway_url, office.lines())
    await drain(service, store.gateway_url)
    with psycopg.connect(store.admin_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM querygate.alerts")
        assert conn.execute("SELECT count(*) FROM querygate.alerts").fetchone() == (1,)
    assert dt.datetime.fromisoformat((await stored_alerts(store.gateway_url))[0].alert.raised_at)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines()
                          if ":\t" in line)
            if fields.get("PPid", "").strip() == str(pid):
                found.append(int(status.parent.name))
    return found


async def _until(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 60) -> None:
    try:
        with anyio.fail_after(seconds):
            while not await check():
                await anyio.sleep(0.2)
    except TimeoutError:
        pytest.fail(f"waited {seconds:.0f} s for {what}")


async def test_serve_runs_the_detector_in_a_process_of_its_own(store: Store) -> None:
    """Alerts are raised while `querygate serve` runs, by a child process that ends with it."""
    with running_server_process(store.project.root) as server:
        detectors = [pid for pid in _children(server.pid)
                     if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(detectors) == 1, "serve started no detector process"

        async def cursor_kept() -> bool:
            with psycopg.connect(store.admin_url) as conn:
                return conn.execute("SELECT count(*) FROM querygate.detect_cursor"
                                    ).fetchone() == (1,)

        await _until(cursor_kept, "the detector to take the log")
        lines = office_with_insiders().lines()
        await append_all(store.gateway_url, lines)

        async def alerted() -> bool:
            raised = await stored_alerts(store.gateway_url)
            rules = {(a.alert.actor_id, a.alert.rule) for a in raised}
            return rules >= {("a1", "volume.spike"), ("a2", "break_glass")}

        await _until(alerted, "the alerts")
    async def gone() -> bool:  # the detector ends with the gateway
        return all(_ended(pid) for pid in detectors)

    await _until(gone, "the detector's process to end", seconds=15)


def _ended(pid: int) -> bool:
    try:
        return "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return True


async def test_a_changed_watch_list_applies_without_a_restart(store: Store) -> None:
    watch = store.project.root / "watch.csv"
    watch.write_text("subject,why\ncustomer:1,board member\n")
    config = store.project.root / "querygate.yaml"
    config.write_text(config.read_text().replace(
        "detect:\n", "detect:\n  watch: {file: watch.csv, refresh_s: 0.01}\n"))
    project = load_project(store.project.root)
    service = DetectorService(project)
    async with await psycopg.AsyncConnection.connect(store.gateway_url, autocommit=True) as conn:
        await service.catch_up(conn)
    office = Office(agents=2, per_day=4).honest(2)
    office.event(moment(0, 12), "a0", "get_customer_by_id", [4242])
    await append_all(store.gateway_url, office.lines())
    await drain(service, store.gateway_url)
    assert [a for a in await stored_alerts(store.gateway_url)] == []
    watch.write_text("subject,why\ncustomer:1,board member\ncustomer:4242,public figure\n")
    await anyio.sleep(0.02)
    later = Office(agents=2, per_day=4, seed=2)
    later.event(moment(1, 12), "a1", "get_customer_by_id", [4242])
    await append_all(store.gateway_url, later.lines())
    await drain(service, store.gateway_url)  # the same process, the file re-read
    [alert] = await stored_alerts(store.gateway_url)
    assert (alert.alert.actor_id, alert.alert.rule, alert.alert.subjects) == \
        ("a1", "watch.subject", ("customer:4242",))
    assert "public figure" in alert.alert.summary
    watch.write_text("customer:1\nnot a subject\n")  # a broken file keeps the lists as they were
    await anyio.sleep(0.02)
    assert not await service.refresh_lists(force=True)
    assert "customer:4242" in service.detector.lists.watched


async def test_a_restart_in_the_middle_of_snooping_keeps_the_evidence(store: Store) -> None:
    office = Office(agents=3, per_day=2).honest(34)
    for k, day in enumerate(d for d in range(22, 34) if working(d)):
        office.event(moment(day, 11), "a2", "get_customer_by_id", [9_000_001 + k % 3])
    lines = office.lines()
    halfway = next(n for n, line in enumerate(lines) if line["occurred_at"] >= "2026-01-30")
    first = DetectorService(store.project)
    async with await psycopg.AsyncConnection.connect(store.gateway_url, autocommit=True) as conn:
        await first.catch_up(conn)
    await append_all(store.gateway_url, lines[:halfway])
    await drain(first, store.gateway_url)
    assert first.raised == 0  # three customers once each before the restart: no return yet
    restarted = DetectorService(store.project)  # replays the log, then reads on
    await append_all(store.gateway_url, lines[halfway:])
    await drain(restarted, store.gateway_url)
    online = {(a.alert.actor_id, a.alert.rule, a.alert.raised_at)
              for a in await stored_alerts(store.gateway_url)}
    assert ("a2", "snoop.returning") in {(actor, rule) for actor, rule, _ in online}
    assert online == offline(lines, restarted)


async def test_lists_from_sql_on_the_live_database(store: Store) -> None:
    config = store.project.root / "querygate.yaml"
    config.write_text(config.read_text().replace("detect:\n", """detect:
  watch: {sql: "SELECT 'customer:' || n, 'board member' FROM generate_series(1, 3) n"}
  relationships:
    sql: "SELECT 'a1', 'customer:1111', 'self' UNION ALL SELECT 'a1', 'nonsense', 'family'"
"""))
    service = DetectorService(load_project(store.project.root))
    assert await service.refresh_lists(force=True)
    lists = service.detector.lists
    assert dict(lists.watched) == {f"customer:{n}": "board member" for n in (1, 2, 3)}
    assert lists.related("a1", None, "customer:1111") == "self"
    assert lists.related("a5", None, "customer:1111") == "colleague"
    assert lists.links["a1"] == {"customer:1111": "self"}  # the row that is no subject is skipped


async def test_the_narrow_read_gives_the_events_the_full_read_gives(store: Store) -> None:
    """The service reads only the columns the detector uses; each event must equal the one
    built from the whole stored row (context flags, roles, subjects, reason included)."""
    from querygate.audit import COLUMNS, StoredEvent
    from querygate.detect import event_from_stored
    from querygate.detect._event import EVENT_COLUMNS, event_from_row

    lines = office_with_insiders().lines()
    await append_all(store.gateway_url, lines)
    async with await psycopg.AsyncConnection.connect(store.gateway_url, autocommit=True) as conn:
        full = await (await conn.execute(
            f"SELECT {COLUMNS} FROM querygate.audit_events ORDER BY seq")).fetchall()
        narrow = await (await conn.execute(
            f"SELECT {EVENT_COLUMNS} FROM querygate.audit_events ORDER BY seq")).fetchall()
    assert len(narrow) == len(lines) > 100
    assert [event_from_row(r) for r in narrow] == [event_from_stored(StoredEvent(r)) for r in full]
    assert any(event_from_row(r).break_glass for r in narrow)


@given(st.datetimes(min_value=dt.datetime(1000, 1, 2), max_value=dt.datetime(9999, 12, 30),
                    timezones=st.timezones()))
def test_iso_millis_is_utc_milliseconds_floored_with_z(moment: dt.datetime) -> None:
    """The detector's timestamp form (the JSONL export's): UTC, milliseconds truncated, ``Z``."""
    from querygate.detect._event import iso_millis

    utc = moment.astimezone(dt.UTC)
    expected = (f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
                f"{utc.second:02d}.{utc.microsecond // 1000:03d}Z")
    assert iso_millis(moment) == expected
