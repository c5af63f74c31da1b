"""What the detector reads: one audit event, from the JSONL export or from the log itself.

Only ``occurred_at``, ``actor_id``, ``function_name``, ``decision`` and
``subjects`` are required (docs/contracts.md, "Backtest input and alert output"); ``reason``,
``actor_roles``, ``client_addr`` and ``context`` sharpen the rules when present.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from querygate.errors import EventError

if TYPE_CHECKING:
    from querygate.audit import StoredEvent

REQUIRED = ("occurred_at", "actor_id", "function_name", "decision", "subjects")
MAX_SUBJECTS = 10_000  # more than any function returns; the rest of a list is ignored


@dataclass(slots=True)
class Event:
    """One call as the detector sees it; ``ts`` is seconds since the epoch (UTC)."""

    ts: float
    occurred_at: str
    actor: str
    function: str
    decision: str
    subjects: tuple[str, ...]
    roles: tuple[str, ...] | None = None
    reason: str | None = None
    addr: str | None = None
    error_code: str | None = None
    break_glass: bool = False
    purpose: str | None = None  # "match" | "miss" when the gateway checked a purpose
    purpose_alert: bool = False  # the purpose check asks for an alert on every miss
    elevated: bool = False  # roles held through an access request or break-glass
    ref: str | None = None  # seq or event_id, to link an alert to its events
    email: str | None = None  # actor_email, for relationships given by email
    watch: str | None = None  # "reason" | "refused": the watch guard broke the glass or refused
    watch_subjects: tuple[str, ...] = ()  # ... for these watched subjects

    @property
    def allowed(self) -> bool:
        return self.decision == "allowed"


def _moment(value: object) -> dt.datetime:
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            raise EventError(f"occurred_at {value[:40]!r} is not an ISO 8601 timestamp") from None
    else:
        raise EventError("occurred_at must be an ISO 8601 timestamp")
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _subjects(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise EventError("subjects must be a list of {\"type\", \"id\"} objects")
    found: list[str] = []
    for item in value[:MAX_SUBJECTS]:
        # a dict, as JSON gives, passes before the slower check against the Mapping ABC
        if type(item) is dict or isinstance(item, Mapping):
            kind, ident = item.get("type"), item.get("id")
        elif isinstance(item, list | tuple) and len(item) == 2:
            kind, ident = item
        else:
            raise EventError("each subject must be {\"type\": ..., \"id\": ...}")
        found.append(sys.intern(f"{kind}:{ident}"))
    return tuple(found)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class _Flags:
    break_glass: bool = False
    purpose: str | None = None
    purpose_alert: bool = False
    elevated: bool = False
    watch: str | None = None
    watch_subjects: tuple[str, ...] = ()


_NO_FLAGS = _Flags()


def _flags(context: object) -> _Flags:
    """What the gateway and its guards noted in the event's ``context``."""
    if not context or not isinstance(context, Mapping):
        return _NO_FLAGS
    glass = str(context.get("break_glass", "")).lower() == "true"
    purpose = context.get("purpose")
    watch = context.get("watch")
    watched = context.get("watch_subjects") if watch in ("reason", "refused") else None
    return _Flags(glass, purpose if purpose in ("match", "miss") else None,
                  context.get("purpose_alert") == "each",
                  glass or bool(context.get("access_request")),
                  watch if watched else None,
                  tuple(sys.intern(s) for s in str(watched).split(",") if s) if watched else ())


# roles as events list them -> sorted: the same few combinations come in every event
_ROLES: dict[tuple[Any, ...], tuple[str, ...]] = {}
_ROLES_MAX = 10_000


def _roles(value: list[Any]) -> tuple[str, ...]:
    key = tuple(value)
    if not all(type(r) is str for r in key):  # as keys 1 == True, and lists are unhashable
        return tuple(sorted(str(r) for r in key))
    held = _ROLES.get(key)
    if held is None:
        held = tuple(sorted(key))
        if len(_ROLES) < _ROLES_MAX:
            _ROLES[key] = held
    return held


def event_from_json(obj: Mapping[str, Any]) -> Event:
    """An event from its JSONL form; EventError names what is missing or wrong."""
    if None in (obj.get("occurred_at"), obj.get("actor_id"), obj.get("function_name"),
                obj.get("decision"), obj.get("subjects")):  # REQUIRED, spelled out: every event
        missing = [k for k in REQUIRED if obj.get(k) is None]
        raise EventError(f"missing {', '.join(missing)}")
    actor = obj["actor_id"]
    if not isinstance(actor, str | int):
        raise EventError("actor_id must be a string")
    when = obj["occurred_at"]
    roles = obj.get("actor_roles")
    flags = _flags(obj.get("context"))
    ref = obj.get("seq", obj.get("event_id"))
    return Event(
        ts=_moment(when).timestamp(), occurred_at=str(when), actor=sys.intern(str(actor)),
        function=sys.intern(str(obj["function_name"])), decision=str(obj["decision"]),
        subjects=_subjects(obj["subjects"]),
        roles=_roles(roles) if isinstance(roles, list) else None,
        reason=_text(obj.get("reason")), addr=_text(obj.get("client_addr")),
        error_code=_text(obj.get("error_code")), break_glass=flags.break_glass,
        purpose=flags.purpose, purpose_alert=flags.purpose_alert, elevated=flags.elevated,
        ref=None if ref is None else str(ref), email=_text(obj.get("actor_email")),
        watch=flags.watch, watch_subjects=flags.watch_subjects,
    )


def event_from_stored(stored: StoredEvent) -> Event:
    """An event from the audit log as the online detector tails it."""
    e = stored.event
    flags = _flags(e.context)
    return Event(
        ts=e.occurred_at.timestamp(), occurred_at=iso_millis(e.occurred_at),
        actor=sys.intern(e.actor_id or "-"), function=sys.intern(e.function_name),
        decision=e.decision, subjects=tuple(sys.intern(f"{t}:{i}") for t, i in e.subjects),
        roles=tuple(sorted(e.actor_roles)), reason=e.reason, addr=e.client_addr,
        error_code=e.error_code, break_glass=flags.break_glass, purpose=flags.purpose,
        purpose_alert=flags.purpose_alert, elevated=flags.elevated, ref=str(stored.seq),
        email=e.actor_email, watch=flags.watch, watch_subjects=flags.watch_subjects,
    )


# What the online detector reads of each stored event: not the parameters, the fields or the
# hashes, which it never looks at (and which cost most to send and decode).
EVENT_COLUMNS = ("seq, occurred_at, actor_id, actor_email, actor_roles, function_name, decision, "
                 "reason, error_code, subjects, client_addr, context")


def event_from_row(row: tuple[Any, ...]) -> Event:
    """An event from a row of ``EVENT_COLUMNS``: the same ``Event`` as ``event_from_stored``."""
    seq, occurred_at, actor_id, email, roles, function, decision = row[:7]
    reason, error_code, subjects, addr, context = row[7:]
    flags = _flags(context)
    intern = sys.intern
    return Event(
        ts=occurred_at.timestamp(), occurred_at=iso_millis(occurred_at),
        actor=intern(actor_id or "-"), function=intern(function),
        decision=decision, subjects=tuple([intern(f"{s.get('type')}:{s.get('id')}")
                                           for s in subjects]),
        roles=tuple(sorted(roles or ())), reason=reason, addr=addr, error_code=error_code,
        break_glass=flags.break_glass, purpose=flags.purpose, purpose_alert=flags.purpose_alert,
        elevated=flags.elevated, ref=str(seq), email=email, watch=flags.watch,
        watch_subjects=flags.watch_subjects,
    )


def iso_millis(moment: dt.datetime) -> str:
    """The export's timestamp form: UTC, milliseconds, ``Z``."""
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
