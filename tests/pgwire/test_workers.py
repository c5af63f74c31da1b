"""``querygate serve --workers 2``: a client's CancelRequest cancels its statement whichever
worker process the cancel connection lands on."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import errors as pgerr

from querygate.pgwire._cancel import CHANNEL, notice_for, verify
from tests.demo_env import Demo, running_server_process

ATTEMPTS = 16  # the kernel picks the worker of each connection: 1 in 2 lands on the other


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _project(demo: Demo, tmp_path: Path, port: int) -> Path:
    folder = tmp_path / "project"
    shutil.copytree(demo.project_dir, folder)
    config = yaml.safe_load((folder / "querygate.yaml").read_text())
    config["postgres"] = {"listen": f"127.0.0.1:{port}"}
    (folder / "querygate.yaml").write_text(yaml.safe_dump(config))
    return folder


def _connect(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    deadline = time.monotonic() + 30
    while True:  # the workers open their gateways after the HTTP port answers
        try:
            return psycopg.connect(dsn, autocommit=True)
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _blocked_call(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[threading.Thread,
                                                                          list[BaseException]]:
    raised: list[BaseException] = []

    def call() -> None:
        try:
            conn.execute("SELECT * FROM get_customer_by_id(%s)", (42,)).fetchall()
        except psycopg.Error as exc:
            raised.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(0.4)  # the call waits on the lock by now
    return thread, raised


@dataclass(frozen=True)
class Workers:
    dsn: str
    demo: Demo


@pytest.fixture(scope="module")
def workers(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    port = _free_port()
    folder = _project(demo, tmp_path_factory.mktemp("workers"), port)
    dsn = (f"host=127.0.0.1 port={port} dbname=querygate user=alice@example.com "
           f"password={demo.token('alice')} sslmode=disable")
    with running_server_process(folder, "--workers", "2"):
        _connect(dsn).close()
        yield Workers(dsn, demo)


def test_workers_share_the_front_door_port(workers: Workers) -> None:
    pids = set()
    for _ in range(7):
        with _connect(workers.dsn) as conn:
            pids.add(conn.execute("SELECT pg_backend_pid()").fetchone())
            row = conn.execute("SELECT * FROM get_customer_by_id(42)").fetchone()
            assert row is not None and row[0] == 42
    assert len(pids) == 7  # each session its own key


def test_a_cancel_reaching_another_worker_cancels_the_query(workers: Workers) -> None:
    with psycopg.connect(workers.demo.admin_url, autocommit=True) as listener, \
            psycopg.connect(workers.demo.admin_url) as lock:
        listener.execute(f"LISTEN {CHANNEL}")
        relayed = 0
        for _ in range(ATTEMPTS):
            lock.execute("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
            with _connect(workers.dsn) as conn:
                pid = conn.execute("SELECT pg_backend_pid()").fetchone()
                assert pid is not None
                thread, raised = _blocked_call(conn)
                # a notice made up without the session's key cancels nothing
                listener.execute("SELECT pg_notify(%s, %s)",
                                 (CHANNEL, f"{pid[0]}:{int(time.time())}:{'0' * 40}"))
                time.sleep(0.3)
                assert thread.is_alive()
                forged = list(listener.notifies(timeout=0.5, stop_after=1))
                assert len(forged) == 1  # our own, heard
                conn.cancel_safe()
                thread.join(5)
                assert not thread.is_alive()
                assert len(raised) == 1 and isinstance(raised[0], pgerr.QueryCanceled)
                assert "user request" in str(raised[0])  # not the statement timeout
                heard = list(listener.notifies(timeout=0.5, stop_after=1))
                relayed += len(heard)
                assert all(str(pid[0]) == n.payload.split(":")[0] for n in heard)
                lock.rollback()
                assert conn.execute("SELECT * FROM get_customer_by_id(42)").fetchone()
            if relayed:
                break
    assert relayed == 1  # one cancel went through the other worker, and it cancelled


@pytest.mark.parametrize("payload", ["", "1:2", "x:1:ab", "12:99999999999:" + "0" * 40])
def test_malformed_or_stale_notices_are_ignored(payload: str) -> None:
    keys = {12: 345}
    assert verify(b"k" * 32, payload, keys.get) is None
    fresh = notice_for(b"k" * 32, 12, 345)
    assert verify(b"k" * 32, fresh, keys.get) == 12
    assert fresh.split(":")[0] == "12" and len(fresh.split(":")) == 3  # pid, time, HMAC
    assert verify(b"j" * 32, fresh, keys.get) is None  # another project's secret
    assert verify(b"k" * 32, fresh, {12: 346}.get) is None  # another session's key
    assert verify(b"k" * 32, notice_for(b"k" * 32, 12, 345, now=time.time() - 120),
                  keys.get) is None  # a replay, too late
