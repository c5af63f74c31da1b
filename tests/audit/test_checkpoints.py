"""Signed checkpoints: each tampering case is caught and the first bad event named."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import psycopg
import pytest

from querygate import audit
from querygate.audit import CheckpointConfig, CheckpointError, CheckpointLoop
from querygate.provision import DEFAULT_GATEWAY_ROLE, url_for
from tests.audit.conftest import (
    UNGUARD,
    Log,
    append,
    checkpoint,
    event,
    open_pool,
    tamper,
    verify,
)
from tests.demo_env import create_database, drop_database

pytestmark = pytest.mark.anyio


async def test_an_untouched_log_verifies_against_its_checkpoints(log: Log) -> None:
    await append(log.gateway_url, [event(n) for n in range(5)])
    first = await checkpoint(log)
    await append(log.gateway_url, [event(n) for n in range(5, 8)])
    await checkpoint(log)
    assert first.size == 5 and first.path is not None and first.path.parent == log.config.folder
    result = await verify(log)
    assert result.ok and result.checked == 8 and result.checkpoints == 2
    quick = await verify(log, from_checkpoint=True)
    assert quick.ok and quick.start_seq == 8 and quick.checked == 0


async def test_a_truncated_tail_behind_a_checkpoint_is_named(log: Log) -> None:
    await append(log.gateway_url, [event(n) for n in range(10)])
    await checkpoint(log)
    with psycopg.connect(log.admin_url, autocommit=True) as conn:
        head = conn.execute("SELECT hash FROM querygate.audit_events WHERE seq = 7").fetchone()
    assert head is not None
    tamper(log.admin_url, "DELETE FROM querygate.audit_events WHERE seq > 7",
           f"UPDATE querygate.audit_head SET seq = 7, hash = '\\x{bytes(head[0]).hex()}'")
    result = await verify(log)
    assert not result.ok and result.first_bad_seq == 8
    assert "8..10 were removed" in (result.problem or "")


async def test_an_older_backup_restored_is_named(log: Log, admin_url: str) -> None:
    await append(log.gateway_url, [event(n) for n in range(4)])
    source = str(psycopg.conninfo.conninfo_to_dict(log.admin_url)["dbname"])
    backup = create_database(admin_url, template=source)  # the backup, taken at 4 events
    try:
        await append(log.gateway_url, [event(n) for n in range(4, 9)])
        await checkpoint(log)
        restored = dataclasses.replace(
            log, gateway_url=url_for(url_for(admin_url, dbname=backup), user=DEFAULT_GATEWAY_ROLE))
        result = await verify(restored)
        assert not result.ok and result.first_bad_seq == 5 and "older backup" in (result.problem or "")
        # and after new calls on the restored copy the history forks at the checkpoint's event
        await append(restored.gateway_url, [event(n, reason="after restore") for n in range(6)])
        forked = await verify(restored)
        assert not forked.ok and forked.first_bad_seq == 9
        assert "signed checkpoint" in (forked.problem or "")
    finally:
        drop_database(admin_url, backup)


async def test_an_edit_before_a_checkpoint_cannot_be_rechained(log: Log) -> None:
    """A superuser who edits event 3 and recomputes every later hash still contradicts the
    signed head."""
    await append(log.gateway_url, [event(n) for n in range(6)])
    await checkpoint(log)
    tamper(log.admin_url, UNGUARD,
           "UPDATE querygate.audit_events SET reason = 'rewritten' WHERE seq = 3")
    events = []
    async with await psycopg.AsyncConnection.connect(log.admin_url, autocommit=True) as conn:
        async for line in audit.export(conn):
            events.append(audit.StoredEvent.from_export(line))
    prev = events[1].hash
    statements = []
    for stored in events[2:]:
        content = stored.event.content_hash()
        digest = audit.link(prev, stored.seq, content)
        statements.append(f"UPDATE querygate.audit_events SET content_hash = '\\x{content.hex()}', "
                          f"prev_hash = '\\x{prev.hex()}', hash = '\\x{digest.hex()}' "
                          f"WHERE seq = {stored.seq}")
        prev = digest
    statements.append(f"UPDATE querygate.audit_head SET hash = '\\x{prev.hex()}'")
    tamper(log.admin_url, *statements)
    result = await verify(log)
    assert not result.ok and result.first_bad_seq == 6 and "signed checkpoint" in (result.problem or "")
    unsigned = await verify(log, config=dataclasses.replace(log.config, folder=log.config.folder / "none"))
    assert unsigned.ok  # without checkpoints a full rewrite is undetectable: why they exist


async def test_forged_shrinking_and_forked_checkpoints_fail(log: Log) -> None:
    await append(log.gateway_url, [event(n) for n in range(3)])
    written = await checkpoint(log)
    assert written.path is not None
    data = json.loads(written.path.read_text())
    forged = written.path.with_name("checkpoint-000000000009-forged.json")
    forged.write_text(json.dumps({**data, "size": 9}))
    result = await verify(log)
    assert not result.ok and "signature does not verify" in (result.problem or "")
    forged.unlink()
    key = log.config.signing_key()
    later = written.time.replace(year=written.time.year + 1)
    audit._checkpoint.write_file(log.config.folder, audit._checkpoint.sign(
        key, written.log_id, 2, written.head_hash, later))
    shrunk = await verify(log)
    assert not shrunk.ok and "shrink" in (shrunk.problem or "") and shrunk.first_bad_seq == 3
    for path in log.config.folder.glob("*.json"):
        path.unlink()
    for n, moment in enumerate([written.time, later]):
        audit._checkpoint.write_file(log.config.folder, audit._checkpoint.sign(
            key, written.log_id, 3, f"{n:064x}", moment))
    forked = await verify(log)
    assert not forked.ok and "forked" in (forked.problem or "")


async def test_checkpoints_of_another_log_fail(log: Log, tmp_path: Path) -> None:
    await append(log.gateway_url, [event(1)])
    key = log.config.signing_key()
    audit._checkpoint.write_file(log.config.folder, audit._checkpoint.sign(
        key, "00000000-0000-0000-0000-000000000000", 1, "00" * 32,
        event(1).occurred_at))
    result = await verify(log)
    assert not result.ok and "was the log replaced" in (result.problem or "")


async def test_the_loop_signs_when_the_head_moves(log: Log) -> None:
    pool = await open_pool(log.gateway_url)
    try:
        loop = CheckpointLoop(pool, dataclasses.replace(log.config, every_s=3600))
        first = await loop.tick()
        assert first is not None and first.size == 0
        assert await loop.tick() is None  # nothing new to sign
        await audit.append(pool, event(1), timeout_s=5)
        second = await loop.tick()
        assert second is not None and second.size == 1
        loop.start()
        await loop.stop()
    finally:
        await pool.close()
    assert len(audit.read_folder(log.config.folder)) == 2
    assert (await verify(log)).checkpoints == 2


def test_settings_are_checked(tmp_path: Path) -> None:
    from querygate.audit._keeper import _parse

    config = _parse({"private_key": "keys/k.pem", "every_s": 60}, tmp_path)
    assert config.private_key == tmp_path / "keys" / "k.pem"
    assert config.folder == tmp_path / "checkpoints" and config.every_s == 60
    with pytest.raises(CheckpointError, match=r"unknown setting checkpoints\.bucket"):
        _parse({"bucket": "s3://x"}, tmp_path)
    with pytest.raises(CheckpointError, match="every_s"):
        _parse({"every_s": "often"}, tmp_path)
    with pytest.raises(CheckpointError, match="audit keygen"):
        CheckpointConfig(folder=tmp_path).signing_key()
    public = audit.generate_key(tmp_path / "k.pem")
    with pytest.raises(CheckpointError, match="never overwrites"):
        audit.generate_key(tmp_path / "k.pem")
    text = audit.public_key_text(public)
    assert _parse({"public_key": text}, tmp_path).verify_key() is not None
