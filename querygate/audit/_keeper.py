"""The ``checkpoints:`` settings, and the loop that writes a checkpoint every N seconds.

``CheckpointLoop`` runs inside the gateway process: every ``every_s`` seconds it signs the log's
head (when it moved) and makes the month partitions ahead of time. Each checkpoint goes to the
folder and, when ``checkpoints.s3`` is set, also to an object-locked bucket; an upload that
fails is logged, counted and retried on the next tick. ``audit verify`` reads both (``stored``)
and the public key to check the log against what was signed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from psycopg_pool import AsyncConnectionPool

from querygate.audit._checkpoint import (
    Checkpoint,
    load_private_key,
    load_public_key,
    read_folder,
    write_checkpoint,
)
from querygate.audit._s3 import S3Config, S3Sink, Upload, parse_s3
from querygate.errors import CheckpointError
from querygate.project import Project, resolve_secret

log = logging.getLogger("querygate.audit")

CHECKPOINT_SETTINGS: tuple[tuple[str, object, str], ...] = (
    ("folder", "checkpoints", "Where checkpoint files are written and read (relative to the "
                              "project folder). Keep it off the database server."),
    ("private_key", None, "The Ed25519 private key (PEM) that signs checkpoints; the gateway "
                          "and `audit checkpoint` need it. `$env:NAME` gives the path."),
    ("public_key", None, "The public key `audit verify` checks signatures with: base64 (as "
                         "`audit keygen` prints) or a PEM file. Default: from private_key."),
    ("every_s", 300, "Seconds between checkpoints written by `querygate serve`; 0 turns the "
                     "periodic checkpoint off."),
    ("partitions_ahead", 3, "Months of empty partitions the gateway keeps made ahead."),
    ("s3", None, "An S3-compatible bucket with object lock that receives every checkpoint as "
                 "well as the folder (see the `s3.*` settings); `audit verify` reads both."),
)


@dataclass(frozen=True)
class CheckpointConfig:
    folder: Path
    private_key: Path | None = None
    public_key: str | None = None
    every_s: float = 300
    partitions_ahead: int = 3
    s3: S3Config | None = None

    @classmethod
    def from_project(cls, project: Project) -> CheckpointConfig:
        """The ``checkpoints:`` section; unknown keys and wrong types are errors."""
        return _parse(project.section("checkpoints"), project.root)

    def signing_key(self) -> Ed25519PrivateKey:
        if self.private_key is None:
            raise CheckpointError("checkpoints.private_key is not set in querygate.yaml; create a "
                                  "key with `querygate audit keygen`")
        return load_private_key(self.private_key)

    def verify_key(self) -> Ed25519PublicKey | None:
        """The public key, or None when neither key is configured (no checkpoints to check)."""
        if self.public_key:
            return load_public_key(self.public_key)
        if self.private_key is not None:
            return self.signing_key().public_key()
        return None

    def open_sink(self) -> S3Sink | None:
        """The S3 sink, its bucket checked for object lock; None without ``checkpoints.s3``."""
        return S3Sink.connect(self.s3) if self.s3 is not None else None

    def stored(self) -> list[Checkpoint]:
        """Every checkpoint in the folder and (when configured) in S3, once each, oldest first."""
        return self.with_bucket(read_folder(self.folder))

    def with_bucket(self, found: list[Checkpoint]) -> list[Checkpoint]:
        """``found`` and every checkpoint version in S3 (when configured), once each, oldest
        first: a checkpoint missing from either place is still checked. Versions that hold
        the bytes of one in ``found`` are not downloaded again."""
        if self.s3 is not None:
            found = found + S3Sink.connect(self.s3).read_all(have=found)
        unique = {(c.log_id, c.size, c.head_hash, c.time, c.key_id, c.signature): c for c in found}
        return sorted(unique.values(), key=lambda c: (c.time, c.size))


def _parse(raw: Mapping[str, Any], root: Path) -> CheckpointConfig:
    where = str(root / "querygate.yaml")
    known = {f.name for f in fields(CheckpointConfig)}
    for key in raw:
        if key not in known:
            raise CheckpointError(f"{where}: unknown setting checkpoints.{key}; known: "
                                  f"{', '.join(sorted(known))}")

    def path(name: str) -> Path | None:
        value = resolve_secret(raw.get(name), what=f"checkpoints.{name}", path=where, line=None)
        return None if value is None else (root / Path(value).expanduser()).resolve()

    every, ahead = raw.get("every_s", 300), raw.get("partitions_ahead", 3)
    if isinstance(every, bool) or not isinstance(every, int | float) or every < 0:
        raise CheckpointError(f"{where}: checkpoints.every_s must be a number of seconds (0: off)")
    if isinstance(ahead, bool) or not isinstance(ahead, int) or not 0 <= ahead <= 24:
        raise CheckpointError(f"{where}: checkpoints.partitions_ahead must be 0 to 24 months")
    public = resolve_secret(raw.get("public_key"), what="checkpoints.public_key", path=where,
                            line=None)
    if public and (root / public).is_file():
        public = str((root / public).resolve())
    s3 = parse_s3(raw["s3"], where) if raw.get("s3") is not None else None
    return CheckpointConfig(path("folder") or (root / "checkpoints").resolve(), path("private_key"),
                            public, float(every), int(ahead), s3)


class CheckpointLoop:
    """Signs the log's head every ``every_s`` seconds while the gateway runs.

    Wire it next to the gateway's audit pool: ``loop = CheckpointLoop.for_project(project,
    pool)``; ``loop.start()`` after the pool opens; ``await loop.stop()`` before it closes.
    """

    def __init__(self, pool: AsyncConnectionPool[Any], config: CheckpointConfig) -> None:
        self.pool = pool
        self.config = config
        self.key = config.signing_key()
        self.sink = config.open_sink()  # refuses a bucket without object lock, at startup
        self.last: Checkpoint | None = None
        self.pending: list[Checkpoint] = []  # signed, not yet in S3, oldest first
        self.uploaded = 0
        self.upload_failures = 0
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def for_project(cls, project: Project, pool: AsyncConnectionPool[Any]) -> CheckpointLoop | None:
        """A loop when ``checkpoints.private_key`` is set and ``every_s`` > 0, else None."""
        config = CheckpointConfig.from_project(project)
        if config.private_key is None or config.every_s <= 0:
            return None
        return cls(pool, config)

    async def tick(self) -> Checkpoint | None:
        """Make partitions ahead; sign the head if it moved since the last checkpoint; upload
        to S3 what it has not taken yet."""
        written = await self._sign()
        if written is not None and self.sink is not None:
            self.pending.append(written)
        await self.upload_pending()
        return written

    async def upload_pending(self) -> list[Upload]:
        """PUT the waiting checkpoints in order; the first failure is logged and counted, and
        it and those after it wait for the next tick."""
        done: list[Upload] = []
        while self.sink is not None and self.pending:
            try:
                done.append(await asyncio.to_thread(self.sink.put, self.pending[0]))
            except CheckpointError as exc:
                self.upload_failures += 1
                log.error("checkpoint of %d events not uploaded (%s); %d waiting, %d failures so "
                          "far; retried next tick", self.pending[0].size, exc.message,
                          len(self.pending), self.upload_failures)
                break
            self.pending.pop(0)
            self.uploaded += 1
        if done and self.upload_failures and not self.pending:
            log.warning("checkpoint uploads resumed: %d uploaded now, after %d failures",
                        len(done), self.upload_failures)
        return done

    async def _sign(self) -> Checkpoint | None:
        async with self.pool.connection() as conn:
            await conn.execute("SELECT querygate.audit_ensure_partitions(%s)",
                               (self.config.partitions_ahead,))
            cur = await conn.execute("SELECT seq, hash FROM querygate.audit_head WHERE id = 1")
            row = await cur.fetchone()
            last = self.last
            if row is not None and last is not None and (last.size, last.head_hash) == (
                    int(row[0]), bytes(row[1]).hex()):
                return None
            self.last = await write_checkpoint(conn, self.key, self.config.folder)
        return self.last

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except (psycopg.Error, OSError, CheckpointError) as exc:
                log.error("checkpoint not written: %s", type(exc).__name__)
            except Exception as exc:  # the loop must outlive any one failure
                log.error("checkpoint loop: unexpected %s", type(exc).__name__)
            await asyncio.sleep(self.config.every_s)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="querygate-checkpoints")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
