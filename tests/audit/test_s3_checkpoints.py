"""Checkpoints in an S3-compatible bucket with object lock, against a real moto server process."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import botocore.exceptions
import psycopg
import pytest

from querygate.audit import CheckpointConfig, CheckpointError, CheckpointLoop
from querygate.audit._s3 import S3Config, S3Sink
from tests.audit.conftest import Log, append, event, open_pool, tamper, verify
from tests.audit.s3_server import client, free_port, make_bucket, moto_server

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as endpoint:
        yield endpoint


def with_bucket(log: Log, bucket: S3Config) -> CheckpointConfig:
    return dataclasses.replace(log.config, s3=bucket)


async def tick(config: CheckpointConfig, url: str) -> CheckpointLoop:
    pool = await open_pool(url, size=1)
    try:
        loop = CheckpointLoop(pool, config)
        await loop.tick()
        return loop
    finally:
        await pool.close()


async def test_each_checkpoint_is_a_locked_object_the_store_will_not_delete(log: Log, s3: str) -> None:
    bucket = make_bucket(s3, retention_days=30)
    config = with_bucket(log, bucket)
    await append(log.gateway_url, [event(n) for n in range(5)])
    loop = await tick(config, log.gateway_url)
    assert loop.uploaded == 1 and loop.upload_failures == 0 and not loop.pending
    assert loop.last is not None and loop.last.path is not None and loop.last.path.is_file()
    admin = client(s3)
    [version] = admin.list_object_versions(Bucket=bucket.bucket)["Versions"]
    assert version["Key"] == f"audit/checkpoints/{loop.last.path.name}"
    head = admin.head_object(Bucket=bucket.bucket, Key=version["Key"], VersionId=version["VersionId"])
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] - loop.last.time > dt.timedelta(days=29, hours=23)
    for bypass in (False, True):  # COMPLIANCE: not even with the governance bypass
        with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
            admin.delete_object(Bucket=bucket.bucket, Key=version["Key"],
                                VersionId=version["VersionId"], BypassGovernanceRetention=bypass)
    result = await verify(log, config=config)
    assert result.ok and result.checked == 5 and result.checkpoints == 1  # folder + S3: one
    sink = S3Sink.connect(bucket)
    [stored] = sink.read_all()
    assert stored == dataclasses.replace(loop.last, path=stored.path)
    assert sink.read_all(have=[loop.last]) == []  # its ETag shows the folder has these bytes


async def test_the_bucket_alone_catches_a_truncation_after_the_folder_is_wiped(log: Log,
                                                                               s3: str) -> None:
    """A superuser who truncates the tail, rewinds the head row, deletes the checkpoint folder
    and hides the object behind a delete marker and a newer version is still caught."""
    bucket = make_bucket(s3)
    config = with_bucket(log, bucket)
    await append(log.gateway_url, [event(n) for n in range(10)])
    loop = await tick(config, log.gateway_url)
    assert loop.last is not None and loop.last.path is not None
    shutil.rmtree(config.folder)
    key = bucket.prefix + loop.last.path.name
    admin = client(s3)
    admin.delete_object(Bucket=bucket.bucket, Key=key)  # a delete marker: the key looks gone
    assert admin.list_objects_v2(Bucket=bucket.bucket).get("KeyCount") == 0
    with psycopg.connect(log.admin_url, autocommit=True) as conn:
        row = conn.execute("SELECT hash FROM querygate.audit_events WHERE seq = 6").fetchone()
    assert row is not None
    tamper(log.admin_url, "DELETE FROM querygate.audit_events WHERE seq > 6",
           f"UPDATE querygate.audit_head SET seq = 6, hash = '\\x{bytes(row[0]).hex()}'")
    assert (await verify(log)).ok  # the folder alone no longer knows
    result = await verify(log, config=config)
    assert not result.ok and result.first_bad_seq == 7
    assert "7..10 were removed" in (result.problem or "")


async def test_a_forged_version_in_the_bucket_is_named(log: Log, s3: str) -> None:
    bucket = make_bucket(s3)
    config = with_bucket(log, bucket)
    await append(log.gateway_url, [event(n) for n in range(3)])
    loop = await tick(config, log.gateway_url)
    assert loop.last is not None and loop.last.path is not None
    key = bucket.prefix + loop.last.path.name
    forged = loop.last.path.read_bytes().replace(b'"size": 3', b'"size": 2')
    client(s3).put_object(Bucket=bucket.bucket, Key=key, Body=forged)  # a newer version
    result = await verify(log, config=config)
    assert not result.ok and "signature does not verify" in (result.problem or "")
    assert f"{loop.last.path.name} (S3 bucket {bucket.bucket}, version " in (result.problem or "")


async def test_a_bucket_without_object_lock_is_refused_at_startup(log: Log, s3: str) -> None:
    config = with_bucket(log, make_bucket(s3, locked=False))
    pool = await open_pool(log.gateway_url, size=1)
    try:
        with pytest.raises(CheckpointError, match="does not have object lock enabled"):
            CheckpointLoop(pool, config)
        missing = dataclasses.replace(config, s3=dataclasses.replace(config.s3, bucket="qg-none"))
        with pytest.raises(CheckpointError, match="NoSuchBucket"):
            CheckpointLoop(pool, missing)
    finally:
        await pool.close()


async def test_a_failed_upload_is_logged_counted_and_retried(log: Log, tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    with moto_server(tmp_path / "moto.log", port) as endpoint:
        config = with_bucket(log, make_bucket(endpoint))
        pool = await open_pool(log.gateway_url, size=1)
        loop = CheckpointLoop(pool, config)  # the bucket checked while the server is up
    try:
        await append(log.gateway_url, [event(n) for n in range(4)])
        with caplog.at_level(logging.WARNING, logger="querygate.audit"):
            written = await loop.tick()  # the server is gone: the folder has it, S3 does not
        assert written is not None and written.path is not None and written.path.is_file()
        assert loop.upload_failures == 1 and loop.pending == [written] and loop.uploaded == 0
        assert "checkpoint of 4 events not uploaded" in caplog.text
        assert "retried next tick" in caplog.text
        with moto_server(tmp_path / "moto.log", port) as endpoint:
            assert config.s3 is not None
            client(endpoint).create_bucket(Bucket=config.s3.bucket, ObjectLockEnabledForBucket=True)
            with caplog.at_level(logging.WARNING, logger="querygate.audit"):
                assert await loop.tick() is None  # the head did not move; the upload is retried
            assert loop.uploaded == 1 and not loop.pending
            assert "checkpoint uploads resumed: 1 uploaded now, after 1 failures" in caplog.text
            assert [c.size for c in config.stored()] == [4]
    finally:
        await pool.close()
