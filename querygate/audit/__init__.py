"""Audit: one append-only, hash-chained event per call, written before any data leaves."""

from querygate.audit._event import GENESIS, AuditEvent, canonical, link, timestamp
from querygate.audit._read import StoredEvent
from querygate.audit._search import Query, export, search
from querygate.audit._store import Receipt, append, configure_audit_connection
from querygate.audit._verify import Verification, verify

__all__ = [
    "GENESIS",
    "AuditEvent",
    "Query",
    "Receipt",
    "StoredEvent",
    "Verification",
    "append",
    "canonical",
    "configure_audit_connection",
    "export",
    "link",
    "search",
    "timestamp",
    "verify",
]
