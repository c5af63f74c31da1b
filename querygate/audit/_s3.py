"""Checkpoints in S3-compatible object storage with object lock: one locked object each.

Each checkpoint is PUT as its own object (the same bytes as the file) with
``ObjectLockMode``, ``ObjectLockRetainUntilDate`` and the Content-MD5 that object lock requires.
Reading lists every *version* under the prefix, so neither a newer version of a key nor a delete
marker can hide a locked checkpoint. boto3 is imported only when ``checkpoints.s3`` is set
(``pip install 'querygate[s3]'``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import Any

from querygate.audit._checkpoint import Checkpoint, decode, encode, file_name
from querygate.errors import CheckpointError
from querygate.project import resolve_secret

S3_SETTINGS: tuple[tuple[str, object, str], ...] = (
    ("bucket", None, "The bucket (required). It must have object lock enabled: the gateway and "
                     "`audit checkpoint` refuse to start otherwise."),
    ("prefix", "querygate/checkpoints/", "Key prefix of the checkpoint objects."),
    ("endpoint_url", None, "An S3-compatible endpoint (MinIO, Ceph, …); default: AWS S3."),
    ("region", None, "The bucket's region; default: boto3's (AWS_REGION, ~/.aws/config)."),
    ("access_key_id", None, "`$env:NAME` or `$file:PATH`. Leave it and secret_access_key unset "
                            "to use boto3's own chain (instance role, AWS_* variables)."),
    ("secret_access_key", None, "`$env:NAME` or `$file:PATH`, with access_key_id."),
    ("retention_days", 365, "Days each checkpoint object stays locked after it was signed."),
    ("lock_mode", "COMPLIANCE", "COMPLIANCE (no one can delete a locked version or shorten its "
                                "lock, not even the account's root) or GOVERNANCE (holders of "
                                "s3:BypassGovernanceRetention can)."),
)
LOCK_MODES = ("COMPLIANCE", "GOVERNANCE")
READERS = 16  # parallel GETs when `audit verify` reads every checkpoint version


@dataclass(frozen=True)
class S3Config:
    """The ``checkpoints.s3:`` section (secrets already resolved)."""

    bucket: str
    prefix: str = "querygate/checkpoints/"
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    retention_days: int = 365
    lock_mode: str = "COMPLIANCE"

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def parse_s3(raw: object, where: str) -> S3Config:
    """``checkpoints.s3``; unknown keys, wrong types and half-given credentials are errors."""
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{where}: checkpoints.s3 must be a mapping (bucket, prefix, …)")
    unknown = sorted(set(raw) - {f.name for f in fields(S3Config)})
    if unknown:
        raise CheckpointError(f"{where}: unknown setting checkpoints.s3.{unknown[0]}; known: "
                              f"{', '.join(name for name, _, _ in S3_SETTINGS)}")

    def text(name: str) -> str | None:
        return resolve_secret(raw.get(name), what=f"checkpoints.s3.{name}", path=where, line=None)

    bucket, key_id, secret = text("bucket"), text("access_key_id"), text("secret_access_key")
    if not bucket:
        raise CheckpointError(f"{where}: checkpoints.s3.bucket is required")
    if (key_id is None) != (secret is None):
        raise CheckpointError(f"{where}: set both checkpoints.s3.access_key_id and "
                              "secret_access_key, or neither (boto3's own credentials)")
    prefix = text("prefix")
    return S3Config(bucket, "querygate/checkpoints/" if prefix is None else prefix,
                    text("endpoint_url"), text("region"), key_id, secret, *_lock(raw, where))


def _lock(raw: Mapping[str, Any], where: str) -> tuple[int, str]:
    days, mode = raw.get("retention_days", 365), raw.get("lock_mode", "COMPLIANCE")
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 36500:
        raise CheckpointError(f"{where}: checkpoints.s3.retention_days must be 1 to 36500 days")
    if mode not in LOCK_MODES:
        raise CheckpointError(f"{where}: checkpoints.s3.lock_mode must be COMPLIANCE or GOVERNANCE")
    return days, str(mode)


@dataclass(frozen=True)
class Upload:
    """Where a checkpoint was stored, and until when it is locked."""

    url: str
    version_id: str | None
    mode: str
    retain_until: dt.datetime


class S3Sink:
    """Writes checkpoints to the bucket as locked objects and reads every version back."""

    def __init__(self, config: S3Config, client: Any) -> None:
        self.config = config
        self.client = client

    @classmethod
    def connect(cls, config: S3Config) -> S3Sink:
        """A sink whose bucket is checked to have object lock on; CheckpointError otherwise."""
        sink = cls(config, _client(config))
        sink.check()
        return sink

    def check(self) -> None:
        """Refuse a bucket without object lock: its checkpoints could be deleted silently."""
        bucket = self.config.bucket
        try:
            found = self.client.get_object_lock_configuration(Bucket=bucket)
        except _errors() as exc:
            code = _code(exc)
            if code == "ObjectLockConfigurationNotFoundError":
                raise CheckpointError(
                    f"S3 bucket {bucket} does not have object lock enabled; checkpoints there "
                    "could be deleted or overwritten. Use a bucket created with object lock "
                    "(versioning on), or remove checkpoints.s3") from None
            raise CheckpointError(f"cannot check object lock on S3 bucket {bucket}: {code}") from None
        if found.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
            raise CheckpointError(f"S3 bucket {bucket} does not have object lock enabled")

    def put(self, checkpoint: Checkpoint) -> Upload:
        """PUT one checkpoint as a new locked object version."""
        body, key = encode(checkpoint), self.config.prefix + file_name(checkpoint)
        until = dt.datetime.now(dt.UTC) + dt.timedelta(days=self.config.retention_days)
        md5 = base64.b64encode(_md5(body)).decode()
        try:
            answer = self.client.put_object(
                Bucket=self.config.bucket, Key=key, Body=body, ContentMD5=md5,
                ContentType="application/json", ObjectLockMode=self.config.lock_mode,
                ObjectLockRetainUntilDate=until)
        except _errors() as exc:
            raise CheckpointError(f"S3 PUT of {self.config.url(key)} failed: {_code(exc)}") from None
        return Upload(self.config.url(key), answer.get("VersionId"), self.config.lock_mode, until)

    def read_all(self, have: Iterable[Checkpoint] = ()) -> list[Checkpoint]:
        """Every version of every checkpoint object under the prefix (delete markers skipped),
        but those holding the very bytes of a checkpoint in ``have``: a single-part PUT's ETag
        is the MD5 of its body, so a version whose ETag matches is not downloaded again."""
        known = {_md5(encode(c)).hex() for c in have}
        try:
            versions = [(key, version) for key, version, etag in self._versions()
                        if etag not in known]
            with ThreadPoolExecutor(max_workers=READERS) as pool:
                return list(pool.map(self._get, versions))
        except _errors() as exc:
            raise CheckpointError(f"cannot read checkpoints from "
                                  f"{self.config.url(self.config.prefix)}: {_code(exc)}") from None

    def _versions(self) -> Iterator[tuple[str, str, str]]:
        pages = self.client.get_paginator("list_object_versions").paginate(
            Bucket=self.config.bucket, Prefix=self.config.prefix)
        for page in pages:
            for version in page.get("Versions", []):
                name = PurePosixPath(version["Key"]).name
                if name.startswith("checkpoint-") and name.endswith(".json"):
                    yield version["Key"], version["VersionId"], version.get("ETag", "").strip('"')

    def _get(self, version: tuple[str, str]) -> Checkpoint:
        """One version; its name in messages says the bucket and the version."""
        key, version_id = version
        answer = self.client.get_object(Bucket=self.config.bucket, Key=key, VersionId=version_id)
        name = f"{PurePosixPath(key).name} (S3 bucket {self.config.bucket}, version {version_id})"
        return decode(answer["Body"].read(), Path(key).parent / name)


def _md5(body: bytes) -> bytes:
    """Content-MD5, which object lock requires of a PUT (an integrity check, not security)."""
    return hashlib.md5(body, usedforsecurity=False).digest()


def _client(config: S3Config) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise CheckpointError("checkpoints.s3 needs boto3: pip install 'querygate[s3]'") from None
    options = Config(
        connect_timeout=5, read_timeout=15, retries={"max_attempts": 3, "mode": "standard"},
        s3={"addressing_style": "path"} if config.endpoint_url else {},
        # Send the Content-MD5 we compute, not a CRC trailer some S3-compatible stores refuse.
        request_checksum_calculation="when_required")
    return boto3.client("s3", endpoint_url=config.endpoint_url, region_name=config.region,
                        aws_access_key_id=config.access_key_id,
                        aws_secret_access_key=config.secret_access_key, config=options)


def _errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return BotoCoreError, ClientError


def _code(exc: Exception) -> str:
    """The S3 error code (``AccessDenied``, ``NoSuchBucket``) or the exception's kind; never a
    credential."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code") or type(exc).__name__)
    return type(exc).__name__
