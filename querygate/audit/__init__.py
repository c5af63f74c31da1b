"""Audit: one append-only, hash-chained event per call, written before any data leaves.

Signed checkpoints (Ed25519, kept outside the database) bound what a superuser can rewrite;
``verify_log`` checks the chain against them.
"""

from querygate.audit._archive import merged, verify_export
from querygate.audit._checkpoint import (
    Checkpoint,
    generate_key,
    public_key_text,
    read_folder,
    signature_ok,
    write_checkpoint,
)
from querygate.audit._content import install as install_content_check
from querygate.audit._content import validate as validate_content_check
from querygate.audit._event import GENESIS, AuditEvent, canonical, link, timestamp
from querygate.audit._keeper import CHECKPOINT_SETTINGS, CheckpointConfig, CheckpointLoop
from querygate.audit._parquet import ParquetWriter
from querygate.audit._policy import policy_rules, policy_version, record_policy_version
from querygate.audit._read import COLUMNS, StoredEvent
from querygate.audit._s3 import S3Sink
from querygate.audit._search import MAX_LIMIT, Query, export, search
from querygate.audit._spanning import Archives, search_everywhere
from querygate.audit._store import Receipt, append, configure_audit_connection
from querygate.audit._verify import Verification, verify, verify_log
from querygate.audit._writer import GroupWriter
from querygate.errors import ArchiveError, CheckpointError

__all__ = [
    "CHECKPOINT_SETTINGS",
    "COLUMNS",
    "GENESIS",
    "MAX_LIMIT",
    "ArchiveError",
    "Archives",
    "AuditEvent",
    "Checkpoint",
    "CheckpointConfig",
    "CheckpointError",
    "CheckpointLoop",
    "GroupWriter",
    "ParquetWriter",
    "Query",
    "Receipt",
    "S3Sink",
    "StoredEvent",
    "Verification",
    "append",
    "canonical",
    "configure_audit_connection",
    "export",
    "generate_key",
    "install_content_check",
    "link",
    "merged",
    "policy_rules",
    "policy_version",
    "public_key_text",
    "read_folder",
    "record_policy_version",
    "search",
    "search_everywhere",
    "signature_ok",
    "timestamp",
    "validate_content_check",
    "verify",
    "verify_export",
    "verify_log",
    "write_checkpoint",
]
