"""Reading the log back: rows to events, events to the JSONL export form, and back again."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from querygate.audit._event import AuditEvent, timestamp

COLUMNS = (
    "seq, event_id, occurred_at, actor_id, actor_email, actor_roles, function_name, parameters, "
    "decision, reason, error_code, rows_returned, fields, subjects, client_addr, duration_us, "
    "context, policy_version, content_hash, prev_hash, hash"
)


class StoredEvent:
    """An event as the log holds it: its content plus its place in the chain."""

    __slots__ = ("content_hash", "event", "hash", "prev_hash", "seq")

    def __init__(self, row: tuple[Any, ...]) -> None:
        self.seq: int = row[0]
        self.event = AuditEvent(
            event_id=row[1] if isinstance(row[1], uuid.UUID) else uuid.UUID(str(row[1])),
            occurred_at=row[2],
            actor_id=row[3],
            actor_email=row[4],
            actor_roles=tuple(row[5] or ()),
            function_name=row[6],
            parameters=row[7],
            decision=row[8],
            reason=row[9],
            error_code=row[10],
            rows_returned=row[11],
            fields=row[12],
            subjects=tuple((s.get("type"), s.get("id")) for s in row[13]),
            client_addr=row[14],
            duration_us=row[15],
            context=row[16],
            policy_version=row[17],
        )
        self.content_hash: bytes = bytes(row[18])
        self.prev_hash: bytes = bytes(row[19])
        self.hash: bytes = bytes(row[20])

    def export(self) -> dict[str, Any]:
        """The public JSONL form (docs/contracts.md, "Audit event: the JSONL export"), plus the
        exact values that let an exported file be verified on its own: ``occurred_at_us``,
        ``duration_us``, ``policy_version`` and ``content_hash``."""
        e = self.event
        return {
            "seq": self.seq,
            "event_id": str(e.event_id),
            "occurred_at": _millis(e.occurred_at),
            "actor_id": e.actor_id,
            "actor_email": e.actor_email,
            "actor_roles": list(e.actor_roles),
            "function_name": e.function_name,
            "parameters": dict(e.parameters),
            "decision": e.decision,
            "reason": e.reason,
            "error_code": e.error_code,
            "rows_returned": e.rows_returned,
            "fields": dict(e.fields),
            "subjects": [{"type": t, "id": i} for t, i in e.subjects],
            "client": e.context.get("client"),
            "client_addr": e.client_addr,
            "duration_ms": round(e.duration_us / 1000, 3),
            "context": dict(e.context),
            "prev_hash": self.prev_hash.hex(),
            "hash": self.hash.hex(),
            "occurred_at_us": timestamp(e.occurred_at),
            "duration_us": e.duration_us,
            "policy_version": e.policy_version,
            "content_hash": self.content_hash.hex(),
        }

    @classmethod
    def from_export(cls, line: Mapping[str, Any]) -> StoredEvent:
        """The event an exported line describes (the exact fields, not the rounded ones)."""
        return cls((
            line["seq"], line["event_id"], _parse_exact(line["occurred_at_us"]),
            line.get("actor_id"), line.get("actor_email"), line.get("actor_roles") or [],
            line["function_name"], line.get("parameters") or {}, line["decision"],
            line.get("reason"), line.get("error_code"), line.get("rows_returned", 0),
            line.get("fields") or {}, line.get("subjects") or [], line.get("client_addr"),
            line["duration_us"], line.get("context") or {}, line.get("policy_version"),
            bytes.fromhex(line["content_hash"]), bytes.fromhex(line["prev_hash"]),
            bytes.fromhex(line["hash"]),
        ))


def _parse_exact(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def _millis(moment: dt.datetime) -> str:
    utc = moment.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
