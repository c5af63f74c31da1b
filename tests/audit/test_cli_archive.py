"""The command line for archives and object-locked checkpoints: `audit export --format parquet`,
`audit verify --export` over mixed files, `audit checkpoint` to S3, and their settings' docs."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import click
import orjson
import pytest
import yaml
from click.testing import CliRunner

from querygate.audit import CHECKPOINT_SETTINGS
from querygate.audit._s3 import S3_SETTINGS, S3Config
from querygate.cli import main
from tests.audit.conftest import Log, append, event
from tests.audit.s3_server import make_bucket, moto_server
from tests.audit.test_parquet_export import _lines

DOCS = Path(__file__).parents[2] / "docs"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as endpoint:
        yield endpoint


def project(log: Log, folder: Path, bucket: S3Config | None = None,
            changes: dict[str, object] | None = None) -> Path:
    checkpoints: dict[str, object] = {"folder": str(log.config.folder),
                                      "private_key": str(log.config.private_key)}
    if bucket is not None:
        checkpoints["s3"] = {"endpoint_url": bucket.endpoint_url, "bucket": bucket.bucket,
                             "prefix": bucket.prefix, "region": bucket.region,
                             "access_key_id": "$env:QG_TEST_S3_KEY",
                             "secret_access_key": "$env:QG_TEST_S3_SECRET",
                             "retention_days": 7, "lock_mode": "GOVERNANCE", **(changes or {})}
    (folder / "queries").mkdir(parents=True, exist_ok=True)
    (folder / "querygate.yaml").write_text(yaml.safe_dump({
        "database": {"url": log.gateway_url}, "secret_key": "k" * 32,
        "checkpoints": checkpoints}))
    return folder


def invoke(folder: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [*args, "--project", str(folder)], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QG_TEST_S3_KEY", "querygate-test")
    monkeypatch.setenv("QG_TEST_S3_SECRET", "querygate-test")


@pytest.mark.usefixtures("s3_env")
def test_months_archived_as_parquet_and_jsonl_verify_against_the_bucket(
        log: Log, tmp_path: Path, s3: str) -> None:
    march_end = dt.datetime(2026, 3, 31, 23, tzinfo=dt.UTC)
    asyncio.run(append(log.gateway_url, [event(n, occurred_at=march_end + dt.timedelta(minutes=20 * n))
                                         for n in range(6)]))
    bucket = make_bucket(s3)
    folder = project(log, tmp_path / "project", bucket)
    code, out, _ = invoke(folder, "audit", "checkpoint")
    assert code == 0 and f"uploaded to s3://{bucket.bucket}/audit/checkpoints/checkpoint-000000000006-" in out
    assert "locked GOVERNANCE until" in out
    code, out, err = invoke(folder, "audit", "export", "--to", "2026-04-01", "--format", "parquet",
                            "--out", str(tmp_path / "2026-03.parquet"))
    assert code == 0 and out == "" and "exported 3 events to" in err and "(1 row group)" in err
    code, out, err = invoke(folder, "audit", "export", "--from", "2026-04-01")
    assert code == 0 and err == "exported 3 events\n"
    since = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    lines = asyncio.run(_lines(log, since=since))
    assert out.encode() == b"".join(orjson.dumps(line) + b"\n" for line in lines)  # unchanged
    (tmp_path / "2026-04.jsonl").write_text(out)
    shutil.rmtree(log.config.folder)  # the checkpoint now comes from the bucket alone
    code, out, _ = invoke(folder, "audit", "verify", "--export", str(tmp_path / "2026-04.jsonl"),
                          "--export", str(tmp_path / "2026-03.parquet"))
    assert code == 0 and out.startswith("ok: 6 exported events verified")
    assert "checkpoints: 1 signed checkpoint(s) matched" in out
    code, out, _ = invoke(folder, "audit", "verify")
    assert code == 0 and "checkpoints: 1 signed checkpoint(s) matched" in out


def test_parquet_needs_a_file(log: Log, tmp_path: Path) -> None:
    code, _, err = invoke(project(log, tmp_path), "audit", "export", "--format", "parquet")
    assert code == 1 and "add --out FILE" in err


@pytest.mark.usefixtures("s3_env")
def test_a_bucket_without_object_lock_or_a_bad_setting_is_refused(log: Log, tmp_path: Path,
                                                                  s3: str) -> None:
    folder = project(log, tmp_path, make_bucket(s3, locked=False))
    code, _, err = invoke(folder, "audit", "checkpoint")
    assert code == 1 and "does not have object lock enabled" in err
    assert not list(log.config.folder.glob("*.json"))  # refused before anything was written
    for bad, message in [({"lock_mode": "FOREVER"}, "COMPLIANCE or GOVERNANCE"),
                         ({"retention_days": 0}, "retention_days must be"),
                         ({"secret_access_key": None}, "set both"),
                         ({"bucket": None}, "bucket is required"),
                         ({"versioning": True}, "unknown setting checkpoints.s3.versioning")]:
        folder = project(log, tmp_path, make_bucket(s3), bad)
        code, _, err = invoke(folder, "audit", "verify")
        assert code == 1 and message in err, bad


def test_every_checkpoint_setting_and_archive_option_is_documented() -> None:
    docs = "\n".join(p.read_text() for p in DOCS.glob("*.md"))
    for name, _default, _help in CHECKPOINT_SETTINGS:
        assert f"`{name}`" in docs, name
    for name, _default, _help in S3_SETTINGS:
        assert f"`s3.{name}`" in docs, name
    audit_group = main.commands["audit"]
    assert isinstance(audit_group, click.Group)
    for command in ("export", "verify", "checkpoint"):
        for param in audit_group.commands[command].params:
            for option in param.opts:
                if option.startswith("--") and option != "--project":
                    assert f"`{option}" in docs or f"{command} {option}" in docs, (command, option)
    assert "--format parquet" in docs
