"""The ``checkpoints:`` settings, and the loop that writes a checkpoint every N seconds.

``CheckpointLoop`` runs inside the gateway process: every ``every_s`` seconds it signs the log's
head (when it moved) and makes the month partitions ahead of time. ``audit verify`` reads the
same folder and public key to check the log against what was signed.
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
    CheckpointError,
    load_private_key,
    load_public_key,
    write_checkpoint,
)
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
)


@dataclass(frozen=True)
class CheckpointConfig:
    folder: Path
    private_key: Path | None = None
    public_key: str | None = None
    every_s: float = 300
    partitions_ahead: int = 3

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
    return CheckpointConfig(path("folder") or (root / "checkpoints").resolve(), path("private_key"), public,
                            float(every), int(ahead))


class CheckpointLoop:
    """Signs the log's head every ``every_s`` seconds while the gateway runs.

    Wire it next to the gateway's audit pool: ``loop = CheckpointLoop.for_project(project,
    pool)``; ``loop.start()`` after the pool opens; ``await loop.stop()`` before it closes.
    """

    def __init__(self, pool: AsyncConnectionPool[Any], config: CheckpointConfig) -> None:
        self.pool = pool
        self.config = config
        self.key = config.signing_key()
        self.last: Checkpoint | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def for_project(cls, project: Project, pool: AsyncConnectionPool[Any]) -> CheckpointLoop | None:
        """A loop when ``checkpoints.private_key`` is set and ``every_s`` > 0, else None."""
        config = CheckpointConfig.from_project(project)
        if config.private_key is None or config.every_s <= 0:
            return None
        return cls(pool, config)

    async def tick(self) -> Checkpoint | None:
        """Make partitions ahead; sign the head if it moved since the last checkpoint."""
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
