"""Audit: one append-only, hash-chained event per call, written before any data leaves.

Signed checkpoints (Ed25519, kept outside the database) bound what a superuser can rewrite;
``verify_log`` checks the chain against them.
"""

from querygate.audit._archived import ArchiveError
from querygate.audit._checkpoint import (
    Checkpoint,
    CheckpointError,
    generate_key,
    public_key_text,
    read_folder,
    signature_ok,
    write_checkpoint,
)
from querygate.audit._event import GENESIS, AuditEvent, canonical, link, timestamp
from querygate.audit._keeper import CHECKPOINT_SETTINGS, CheckpointConfig, CheckpointLoop
from querygate.audit._policy import policy_rules, policy_version, record_policy_version
from querygate.audit._read import StoredEvent
from querygate.audit._search import Query, export, search
from querygate.audit._spanning import Archives, search_everywhere
from querygate.audit._store import Receipt, append, configure_audit_connection
from querygate.audit._verify import Verification, verify, verify_log

__all__ = [
    "CHECKPOINT_SETTINGS",
    "GENESIS",
    "ArchiveError",
    "Archives",
    "AuditEvent",
    "Checkpoint",
    "CheckpointConfig",
    "CheckpointError",
    "CheckpointLoop",
    "Query",
    "Receipt",
    "StoredEvent",
    "Verification",
    "append",
    "canonical",
    "configure_audit_connection",
    "export",
    "generate_key",
    "link",
    "policy_rules",
    "policy_version",
    "public_key_text",
    "read_folder",
    "record_policy_version",
    "search",
    "search_everywhere",
    "signature_ok",
    "timestamp",
    "verify",
    "verify_log",
    "write_checkpoint",
]
