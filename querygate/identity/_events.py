"""Identity steps in the audit log: requests, approvals, break-glass, offboarding, SCIM changes.

They are ordinary hash-chained audit events whose ``function_name`` starts
with ``querygate.`` (no catalog function has a dot in its name) and whose
``context`` says what happened, so the detector and ``audit search`` see them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from querygate import audit
from querygate.execute import audit_pool
from querygate.identity._model import Identity
from querygate.project import Project

PREFIX = "querygate."


def identity_event(action: str, *, actor: Identity | None = None, actor_label: str | None = None,
                   decision: str = "allowed", reason: str | None = None,
                   context: Mapping[str, str] | None = None, error_code: str | None = None,
                   client_addr: str | None = None) -> audit.AuditEvent:
    """One audit event for an identity step taken by ``actor`` (or by a named non-person)."""
    merged = {**(actor.context if actor else {}), **(context or {})}
    return audit.AuditEvent(
        occurred_at=dt.datetime.now(dt.UTC), function_name=PREFIX + action, decision=decision,
        actor_id=actor.user_id if actor else actor_label,
        actor_email=actor.email if actor else None,
        actor_roles=actor.roles if actor else (), reason=reason, error_code=error_code,
        client_addr=client_addr, context={k: str(v) for k, v in merged.items()},
    )


async def record(project: Project, *events: audit.AuditEvent) -> list[audit.Receipt]:
    """Append events from a command-line tool: its own short-lived audit pool."""
    url = project.audit_url or project.database_url
    pool = audit_pool(url, project.settings)
    await pool.open(wait=True, timeout=project.settings.pool_timeout_s * 2)
    try:
        timeout = project.settings.audit_timeout_ms / 1000
        return [await audit.append(pool, event, timeout_s=timeout) for event in events]
    finally:
        await pool.close()
