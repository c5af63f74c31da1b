"""What a call leaves in the audit log: the event being drafted, its parameters (sensitive
ones as keyed HMACs), its subjects, and caller-chosen text made safe to keep."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from operator import itemgetter
from typing import Any

from querygate import audit
from querygate.errors import BadParameters
from querygate.gateway._analysis import AnalysedFunction
from querygate.identity import Identity
from querygate.policy import Plan

MAX_REASON_CHARS = 500


class EventDraft:
    """The audit event of a call in progress."""

    def __init__(self, who: Identity | None, function: str, client_addr: str | None,
                 policy_version: str | None = None, client: str = "http") -> None:
        self.who, self.function, self.client_addr = who, function, client_addr
        self.policy_version, self.client = policy_version, client
        self.notes: dict[str, str] = {}  # the call's own guard findings (CallContext.notes)
        self.started = time.monotonic()
        self.occurred_at = dt.datetime.now(dt.UTC)
        self.reason: str | None = None
        self.parameters: dict[str, object] = {}

    def finish(self, decision: str, *, rows: int = 0, fields: Mapping[str, str] | None = None,
               subjects: tuple[tuple[str, str], ...] = (),
               error_code: str | None = None) -> audit.AuditEvent:
        return audit.AuditEvent(
            occurred_at=self.occurred_at, function_name=printable(self.function), decision=decision,
            actor_id=self.who.user_id if self.who else None,
            actor_email=self.who.email if self.who else None,
            actor_roles=self.who.roles if self.who else (),
            parameters=self.parameters, reason=self.reason, error_code=error_code,
            rows_returned=rows, fields=dict(fields or {}), subjects=subjects,
            client_addr=self.client_addr,
            duration_us=int((time.monotonic() - self.started) * 1_000_000),
            context={**(self.who.context if self.who else {}), **self.notes,
                     "client": self.client},
            policy_version=self.policy_version,
        )


class RefusalBudget:
    """How many refusals of unknown tokens are audited: ``rate`` a second, bursts of ``burst``.

    A flood of bad tokens must not fill the audit store, and must not vanish either: what the
    budget passes over is counted, and the next refusal recorded carries that count
    (``context.unrecorded_refusals``)."""

    def __init__(self, rate: float = 20.0, burst: float = 100.0) -> None:
        self.rate, self.burst = rate, burst
        self._tokens, self._at = burst, time.monotonic()
        self.skipped = 0

    def take(self) -> int | None:
        """None when this refusal goes unrecorded; else how many were skipped before it."""
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1:
            self.skipped += 1
            return None
        self._tokens -= 1
        skipped, self.skipped = self.skipped, 0
        return skipped


def printable(text: str, limit: int = 200) -> str:
    """A caller-chosen name as the log keeps it: bounded, control characters escaped."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text[:limit])


def checked_reason(reason: object) -> str | None:
    if reason is None or reason == "":
        return None
    if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS or "\x00" in reason:
        raise BadParameters(f"reason must be text of at most {MAX_REASON_CHARS} characters",
                            parameter="reason")
    return reason


def as_plain(value: object) -> object:
    """A bound value as JSON the audit log can hash: no floats, no dates, no decimals."""
    if isinstance(value, list):
        return [as_plain(v) for v in value]
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def add_subjects(found: dict[tuple[str, str], None], plan_: Plan,
                  rows: list[tuple[Any, ...]]) -> None:
    """Subject ids from the columns that carry them, in order of first appearance."""
    for i, column in enumerate(plan_.columns):
        subject = column.spec.subject
        if subject:
            ids = dict.fromkeys(map(itemgetter(i), rows))  # each id once, first appearance first
            ids.pop(None, None)
            found.update(dict.fromkeys((subject, str(v)) for v in ids))


def with_parameters(found: dict[tuple[str, str], None], analysed: AnalysedFunction,
                     values: Mapping[str, object], count: int) -> tuple[tuple[str, str], ...]:
    """Add the subjects a call selected by equality on a subject key, when it returned rows."""
    if count:
        for param, subject in analysed.subject_params.items():
            if values.get(param) is not None:
                found[(subject, str(values[param]))] = None
    return tuple(found)


def audit_parameters(analysed: AnalysedFunction, values: Mapping[str, object],
                 key: bytes) -> dict[str, object]:
    """Parameters as the log keeps them: values compared to tagged columns as HMACs."""
    kept: dict[str, object] = {}
    for name, value in values.items():
        plain = as_plain(value)
        if name in analysed.sensitive_params:
            text = json.dumps(plain, sort_keys=True, ensure_ascii=False)
            digest = hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
            plain = f"hmac:{digest[:32]}"
        kept[name] = plain
    return kept
