"""Signed checkpoints: the log's size and head hash at a moment, signed with Ed25519.

A checkpoint is a small JSON file written outside the audit database, signed with a key the
database never sees. Later, ``audit verify`` checks every signature, that checkpoints never
shrink or fork, and that the log still holds what each one signed: a superuser who edits,
truncates or restores the database cannot make it match a checkpoint again.

The signed bytes are ``querygate-checkpoint-v1\\n`` followed by the canonical JSON of
``{"log_id", "size", "head_hash", "time", "key_id"}`` (the same encoding as events).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from querygate.audit._event import canonical, timestamp
from querygate.errors import CheckpointError

DOMAIN = b"querygate-checkpoint-v1\n"




@dataclass(frozen=True)
class Checkpoint:
    """What the log was at ``time``: ``size`` events, the last one hashing to ``head_hash``."""

    log_id: str
    size: int
    head_hash: str  # hex
    time: dt.datetime
    key_id: str
    signature: str = ""  # base64 of the Ed25519 signature
    path: Path | None = None

    def body(self) -> dict[str, Any]:
        return {"log_id": self.log_id, "size": self.size, "head_hash": self.head_hash,
                "time": timestamp(self.time), "key_id": self.key_id}

    def message(self) -> bytes:
        return DOMAIN + canonical(self.body())

    def to_json(self) -> dict[str, Any]:
        return {"v": 1, **self.body(), "signature": self.signature}


def key_id(public: Ed25519PublicKey) -> str:
    """A short, stable name of a public key: the first 16 hex digits of its SHA-256."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_text(public: Ed25519PublicKey) -> str:
    """The public key as one line of base64 (what ``checkpoints.public_key`` may hold)."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def generate_key(path: Path) -> Ed25519PublicKey:
    """Write a new private key (PEM, mode 0600) to ``path``; never overwrite one."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CheckpointError(f"{path} exists already; querygate never overwrites a key") from None
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return key.public_key()


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise CheckpointError(f"cannot read the checkpoint key {path}: {exc.strerror}; create "
                              "one with `querygate audit keygen`") from None
    except ValueError:
        raise CheckpointError(f"{path} is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointError(f"{path} is not an Ed25519 key")
    return key


def load_public_key(text: str) -> Ed25519PublicKey:
    """A public key from base64 (32 raw bytes) or from a PEM file's path."""
    try:
        raw = base64.b64decode(text, validate=True)
        if len(raw) == 32:
            return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        pass
    try:
        key = serialization.load_pem_public_key(Path(text).read_bytes())
    except (OSError, ValueError):
        raise CheckpointError("checkpoints.public_key must be a PEM file's path or 32 bytes of "
                              "base64 (as `querygate audit keygen` prints)") from None
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointError("checkpoints.public_key is not an Ed25519 key")
    return key


def sign(key: Ed25519PrivateKey, log_id: str, size: int, head_hash: str,
         when: dt.datetime) -> Checkpoint:
    unsigned = Checkpoint(log_id, size, head_hash, when, key_id(key.public_key()))
    signature = base64.b64encode(key.sign(unsigned.message())).decode()
    return Checkpoint(log_id, size, head_hash, when, unsigned.key_id, signature)


def signature_ok(checkpoint: Checkpoint, public: Ed25519PublicKey) -> bool:
    try:
        public.verify(base64.b64decode(checkpoint.signature), checkpoint.message())
    except (InvalidSignature, ValueError):
        return False
    return checkpoint.key_id == key_id(public)


async def read_head(conn: psycopg.AsyncConnection[Any]) -> tuple[str, int, str]:
    """The log's id, size and head hash, as the database holds them now."""
    cur = await conn.execute("SELECT log_id, seq, hash FROM querygate.audit_head WHERE id = 1")
    row = await cur.fetchone()
    if row is None:
        raise CheckpointError("the audit log has no head row; run `querygate setup`")
    return str(row[0]), int(row[1]), bytes(row[2]).hex()


def file_name(checkpoint: Checkpoint) -> str:
    """``checkpoint-<size>-<time>.json``: names sort by size, then time."""
    stamp = checkpoint.time.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"checkpoint-{checkpoint.size:012d}-{stamp}.json"


def encode(checkpoint: Checkpoint) -> bytes:
    """The bytes of a checkpoint file (and of an S3 checkpoint object)."""
    return orjson.dumps(checkpoint.to_json(), option=orjson.OPT_INDENT_2) + b"\n"


def write_file(folder: Path, checkpoint: Checkpoint) -> Path:
    """Write a checkpoint durably (temporary file, fsync, rename); return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file_name(checkpoint)
    temporary = path.with_suffix(".tmp")
    with open(temporary, "wb") as out:
        out.write(encode(checkpoint))
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    return path


async def write_checkpoint(conn: psycopg.AsyncConnection[Any], key: Ed25519PrivateKey,
                           folder: Path) -> Checkpoint:
    """Sign the log's current head and write it to ``folder``."""
    log_id, size, head_hash = await read_head(conn)
    checkpoint = sign(key, log_id, size, head_hash, dt.datetime.now(dt.UTC))
    return dataclasses.replace(checkpoint, path=write_file(folder, checkpoint))


def decode(data: bytes, where: Path) -> Checkpoint:
    """A checkpoint from its bytes; ``where`` names it in messages (a file, or an S3 key)."""
    try:
        found = orjson.loads(data)
        when = dt.datetime.strptime(found["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
        return Checkpoint(str(found["log_id"]), int(found["size"]), str(found["head_hash"]), when,
                          str(found["key_id"]), str(found["signature"]), where)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{where.name} is not a readable checkpoint ({type(exc).__name__})"
                              ) from None


def read_file(path: Path) -> Checkpoint:
    """One checkpoint file; CheckpointError when it is not one."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path.name} is not a readable checkpoint ({type(exc).__name__})"
                              ) from None
    return decode(data, path)


def read_folder(folder: Path) -> list[Checkpoint]:
    """Every checkpoint in ``folder``, oldest first; CheckpointError names a broken file."""
    if not folder.is_dir():
        return []
    found = [read_file(p) for p in sorted(folder.glob("checkpoint-*.json"))]
    return sorted(found, key=lambda c: (c.time, c.size))


@dataclass(frozen=True)
class Review:
    """What the checkpoints of one log say before the log itself is read."""

    usable: list[Checkpoint]  # signed by the key, for this log, oldest first
    problem: str | None = None
    bad_seq: int | None = None


def review(checkpoints: list[Checkpoint], public: Ed25519PublicKey, log_id: str) -> Review:
    """Every signature must hold; sizes never shrink over time; one size, one head hash."""
    for checkpoint in checkpoints:
        if not signature_ok(checkpoint, public):
            name = checkpoint.path.name if checkpoint.path else "a checkpoint"
            return Review([], f"{name}: the signature does not verify with the configured "
                              "public key (forged or altered checkpoint)")
    mine = [c for c in checkpoints if c.log_id == log_id]
    if checkpoints and not mine:
        return Review([], f"the checkpoints were signed for log {checkpoints[-1].log_id}, but "
                          f"this database's log is {log_id} (was the log replaced?)")
    seen: dict[int, str] = {}
    for earlier, later in itertools.pairwise(mine):
        if later.size < earlier.size:
            return Review(mine, f"checkpoints shrink: {earlier.size} events at "
                                f"{timestamp(earlier.time)}, {later.size} at {timestamp(later.time)} "
                                "(the log was rolled back in between)", later.size + 1)
    for checkpoint in mine:
        if seen.setdefault(checkpoint.size, checkpoint.head_hash) != checkpoint.head_hash:
            return Review(mine, f"two checkpoints sign different heads for {checkpoint.size} "
                                "events (the log forked)", checkpoint.size)
    return Review(mine)
