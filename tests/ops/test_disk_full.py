"""The audit store's disk full, for real, under load: its tables live in a tablespace on a small
tmpfs that a ballast file fills. The gateway refuses (503, no rows), keeps nothing in memory to
write later, and serves again once the space is freed, without a restart.

Mounting needs root, as CI runs; the test fails (it does not skip) without it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from querygate.demo import start_embedded, stop_embedded
from querygate.provision import DEFAULT_GATEWAY_ROLE, setup_database, url_for
from tests.conftest import with_db
from tests.demo_env import Demo, serving
from tests.gateway.test_fail_closed import project_with
from tests.ops.audit_checks import assert_chain_whole, assert_one_event_each, assert_verifies
from tests.ops.load import Load
from tests.ops.test_faults import assert_failed_cleanly
from tests.ops.test_metrics import samples, value

pytestmark = pytest.mark.anyio

SPACE_MB = 32  # the audit store's whole disk


@contextlib.contextmanager
def small_disk(mount_point: Path, owner: str) -> Iterator[Path]:
    """A tmpfs of SPACE_MB owned by ``owner``, unmounted afterwards whatever happened."""
    assert os.geteuid() == 0, "this test mounts a tmpfs for the audit store: run it as root"
    user = pwd.getpwnam(owner)
    mount_point.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SPACE_MB}m,mode=0700,uid={user.pw_uid}"
                    f",gid={user.pw_gid}", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=True)


def fill(path: Path) -> int:
    """Write ``path`` until the filesystem has no space left; returns the bytes written."""
    chunk, written = b"\0" * 65536, 0
    with path.open("wb", buffering=0) as ballast:
        while True:
            try:
                written += ballast.write(chunk) or 0
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
    # the last few bytes a chunk did not fit
    with path.open("ab", buffering=0) as ballast, contextlib.suppress(OSError):
        while ballast.write(b"\0" * 512):
            written += 512
    return written


def audit_store_on(space: Path, server: str) -> str:
    """A database whose every table lives on ``space``; returns the gateway role's URL."""
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE TABLESPACE audit_space LOCATION '{space}'")
        conn.execute("CREATE DATABASE audit_small TABLESPACE audit_space")
    admin = with_db(server, "audit_small")
    setup_database(admin, parts=("audit",), read_schemas=())
    return admin


@pytest.mark.slow
async def test_audit_store_disk_full_under_load(demo: Demo, tmp_path: Path) -> None:
    pg = tmp_path / "audit-pg"
    server = start_embedded(pg)
    owner = "pgserver" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    try:
        with small_disk(tmp_path / "audit-space", owner) as space:
            tablespace = space / "pg"
            tablespace.mkdir()
            os.chown(tablespace, pwd.getpwnam(owner).pw_uid, pwd.getpwnam(owner).pw_gid)
            admin = audit_store_on(tablespace, server)
            project = project_with(demo, tmp_path, settings="  audit_timeout_ms: 5000",
                                   audit_url=url_for(admin, user=DEFAULT_GATEWAY_ROLE))
            async with serving(project) as client:
                before = samples((await client.get("/metrics")).text)
                load = Load(client, demo.token("alice"))
                async with load.running():
                    await load.until(lambda: load.count(200) >= 20)
                    assert fill(space / "ballast") > 0
                    full = len(load.responses)
                    await load.until(lambda: load.count(503, full) >= 20)
                    refused = len(load.responses)  # still refusing, the disk still full
                    await load.until(lambda: load.count(503, refused) >= 20)
                    assert load.count(200, refused) == 0
                    # the store still answers reads: readiness stays, every replica fails closed
                    assert (await client.get("/readyz")).status_code == 200
                    (space / "ballast").unlink()
                    freed = len(load.responses)
                    await load.until(lambda: load.count(200, freed) >= 20)
                after = samples((await client.get("/metrics")).text)
                assert (await client.get("/readyz")).status_code == 200
            assert_failed_cleanly(load, {"audit_unavailable"})
            failed = "querygate_audit_events_total"
            assert value(after, failed, outcome="failed") >= value(
                before, failed, outcome="failed") + 40
            with psycopg.connect(admin) as conn:
                written = {str(r[0]) for r in conn.execute(
                    "SELECT event_id FROM querygate.audit_events").fetchall()}
            messages = {r.json()["error"]["message"] for r in load.responses
                        if r.status_code == 503}  # the store said so: SQLSTATE 53100
            assert any("(DiskFull)" in m for m in messages), messages
            # nothing was held in memory and written later: the log has exactly the 200s' events
            assert written == set(load.audit_ids())
            assert_one_event_each(admin, load.audit_ids())
            assert_chain_whole(admin)
            assert_verifies(project)
    finally:
        stop_embedded(pg)
