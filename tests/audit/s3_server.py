"""A real S3-compatible server for the checkpoint tests: moto's server mode, its own process.

moto speaks the S3 API over HTTP, object lock included (it refuses to delete a version under
COMPLIANCE retention, and refuses a locked PUT without Content-MD5), so the tests exercise
the same requests a real bucket gets.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
from botocore.config import Config

from querygate.audit._s3 import S3Config

CREDENTIALS = {"aws_access_key_id": "querygate-test", "aws_secret_access_key": "querygate-test"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def moto_server(log: Path, port: int | None = None) -> Iterator[str]:
    """``python -m moto.server`` on 127.0.0.1; yields its endpoint URL once it answers."""
    port = port or free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                 "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait(endpoint, proc, log)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait(endpoint: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{endpoint}/moto-api/", timeout=1)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError(f"moto did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.1)


def client(endpoint: str) -> Any:
    """A plain boto3 client: what an administrator (or an attacker with S3 keys) would use."""
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **CREDENTIALS,
                        config=Config(s3={"addressing_style": "path"},
                                      retries={"max_attempts": 1}))


def make_bucket(endpoint: str, *, locked: bool = True, **settings: Any) -> S3Config:
    """A new bucket (with object lock unless ``locked`` is false) and its querygate settings."""
    name = f"qg-{uuid.uuid4().hex[:12]}"
    client(endpoint).create_bucket(Bucket=name, ObjectLockEnabledForBucket=locked)
    return S3Config(name, "audit/checkpoints/", endpoint, "us-east-1",
                    CREDENTIALS["aws_access_key_id"], CREDENTIALS["aws_secret_access_key"],
                    **settings)
