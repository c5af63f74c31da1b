"""Just-in-time elevation and break-glass: requests, decisions and time-boxed grants.

A person asks for a role for a while, with a reason; a holder of one of the
role's ``approvers`` roles approves or denies (never the requester). An
approved grant adds the role to the person's identity until ``expires_at``,
judged by the database clock so every gateway process agrees. Break-glass is
a grant a person gives themselves for a role declared ``break_glass``: short,
with a mandatory reason, and flagged in every audit event it touches.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from querygate.errors import BadParameters, NotFound, PolicyDenied, RequestClosed
from querygate.identity._db import writing
from querygate.identity._model import Identity, param_text
from querygate.identity._settings import AccessSettings, parse_duration
from querygate.identity._tokens import new_id
from querygate.project import Project

MAX_REASON = 500




@dataclass(frozen=True)
class AccessRequest:
    id: str
    user_id: str
    email: str
    role: str
    reason: str
    duration_s: int
    functions: list[str]
    params: dict[str, Any]
    break_glass: bool
    status: str
    requested_at: dt.datetime
    decided_by: str | None = None
    decided_at: dt.datetime | None = None
    decision_note: str | None = None
    starts_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None

    def to_json(self) -> dict[str, object]:
        body = {k: v for k, v in self.__dict__.items()}
        for key in ("requested_at", "decided_at", "starts_at", "expires_at"):
            value = body[key]
            body[key] = value.isoformat() if isinstance(value, dt.datetime) else None
        return body


@dataclass(frozen=True)
class Scope:
    """What an approval may be bound to: some functions, some parameter values."""

    functions: tuple[str, ...] = ()
    params: Mapping[str, object] = field(default_factory=dict)


_SELECT = """
SELECT a.id, a.user_id, u.email, a.role, a.reason, a.duration_s, a.functions, a.params,
       a.break_glass, a.status, a.requested_at, d.email AS decided_by, a.decided_at,
       a.decision_note, a.starts_at, a.expires_at
FROM querygate.access_requests a JOIN querygate.users u ON u.id = a.user_id
LEFT JOIN querygate.users d ON d.id = a.decided_by
"""


def _person(who: Identity) -> None:
    if who.kind != "person" or who.on_behalf_of is not None:
        raise PolicyDenied("access.people_only", "only people request, approve or break glass; "
                           "agents and services act with the roles they were given")


def _reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        raise BadParameters(f"a reason (1 to {MAX_REASON} characters) is required",
                            parameter="reason")
    return reason.strip()


def _duration(value: object, limit: int) -> int:
    try:
        seconds = parse_duration(value, what="duration")
    except ValueError as exc:
        raise BadParameters(str(exc), parameter="duration") from None
    if seconds > limit:
        raise BadParameters(f"duration {value} is longer than the {limit} s allowed",
                            parameter="duration")
    return seconds


def check_scope(project: Project, role: str, scope: Scope) -> Scope:
    """A scope whose functions exist and are granted by ``role``; parameters need functions."""
    granting = project.roles[role]
    for name in scope.functions:
        if name not in project.catalog or granting.grants(name) is None:
            raise BadParameters(f"role {role} does not grant a function named {name[:80]!r}",
                                parameter="functions")
    if scope.params and not scope.functions:
        raise BadParameters("binding parameter values needs the functions they belong to",
                            parameter="params")
    params = {}
    for name, value in scope.params.items():
        declared = [p for f in scope.functions for p in project.catalog[f].parameters
                    if p.name == name]
        if not declared:
            raise BadParameters(f"none of those functions has a parameter {name[:64]!r}",
                                parameter="params")
        params[name] = param_text(declared[0].convert(value, max_chars=1000))
    return Scope(tuple(scope.functions), params)


def approver_roles(project: Project, role: str) -> tuple[str, ...]:
    approvers = project.roles[role].options.get("approvers") or []
    return tuple(str(a) for a in approvers) if isinstance(approvers, list) else ()


def _known_role(project: Project, role: object) -> str:
    if not isinstance(role, str) or role not in project.roles:
        raise BadParameters(f"no role named {str(role)[:64]!r} in querygate.yaml", parameter="role")
    return role


async def request_access(conn: psycopg.AsyncConnection[Any], who: Identity, project: Project,
                         settings: AccessSettings, *, role: object, duration: object,
                         reason: object, scope: Scope = Scope()) -> AccessRequest:
    """Record a pending request; it grants nothing until someone else approves it."""
    _person(who)
    name = _known_role(project, role)
    if not approver_roles(project, name):
        raise PolicyDenied("access.no_approvers", f"role {name} cannot be requested: it names no "
                           "approvers in querygate.yaml")
    if name in who.standing_roles:
        raise BadParameters(f"you already hold role {name}", parameter="role")
    values = (new_id("acc"), who.user_id, name, _reason(reason),
              _duration(duration, settings.max_duration_s))
    scope = check_scope(project, name, scope)
    async with writing(conn):
        await conn.execute(
            "INSERT INTO querygate.access_requests (id, user_id, role, reason, duration_s, "
            "functions, params) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (*values, list(scope.functions), Jsonb(dict(scope.params))))
    return await get_request(conn, values[0])


async def get_request(conn: psycopg.AsyncConnection[Any], request_id: str) -> AccessRequest:
    async with conn.cursor(row_factory=class_row(AccessRequest)) as cur:
        await cur.execute(_SELECT + " WHERE a.id = %s", (request_id,))
        found = await cur.fetchone()
    if found is None:
        raise NotFound(f"no access request {request_id[:40]!r}; `querygate access list` shows them")
    return found


async def decide(conn: psycopg.AsyncConnection[Any], approver: Identity, project: Project,
                 settings: AccessSettings, request_id: str, *, approve: bool,
                 note: str | None = None, scope: Scope | None = None) -> AccessRequest:
    """Approve (the window starts now) or deny a pending request; never one's own."""
    _person(approver)
    request = await get_request(conn, request_id)
    if request.user_id == approver.user_id:
        raise PolicyDenied("access.self_approval", "you cannot approve or deny your own request")
    allowed = approver_roles(project, request.role) if request.role in project.roles else ()
    if not set(allowed) & set(approver.standing_roles):
        raise PolicyDenied("access.approver", f"requests for role {request.role} are decided by "
                           f"holders of {', '.join(allowed) or 'no role'}")
    if scope is not None and approve:
        scope = check_scope(project, request.role, scope)
    async with writing(conn):
        cur = await conn.execute(_DECIDE, {
            "id": request_id, "by": approver.user_id, "note": (note or "")[:MAX_REASON] or None,
            "status": "approved" if approve else "denied", "ttl": settings.request_ttl_s,
            "functions": list(scope.functions) if scope else None,
            "params": Jsonb(dict(scope.params)) if scope else None})
        if cur.rowcount != 1:
            raise RequestClosed(f"request {request_id} is {request.status} or has lapsed; "
                                "only a pending request less than "
                                f"{settings.request_ttl_s} s old can be decided")
    return await get_request(conn, request_id)


_DECIDE = """
UPDATE querygate.access_requests SET
    status = %(status)s, decided_by = %(by)s, decided_at = now(), decision_note = %(note)s,
    starts_at = CASE WHEN %(status)s = 'approved' THEN now() END,
    expires_at = CASE WHEN %(status)s = 'approved' THEN now() + make_interval(secs => duration_s) END,
    functions = coalesce(%(functions)s, functions), params = coalesce(%(params)s, params)
WHERE id = %(id)s AND status = 'pending' AND user_id <> %(by)s
  AND requested_at > now() - make_interval(secs => %(ttl)s)
"""


async def break_glass(conn: psycopg.AsyncConnection[Any], who: Identity, project: Project,
                      settings: AccessSettings, *, role: object, reason: object,
                      duration: object = None) -> AccessRequest:
    """Self-grant a role declared ``break_glass``, now, for a short while, with a reason."""
    _person(who)
    name = _known_role(project, role)
    option = project.roles[name].options.get("break_glass")
    if not option:
        raise PolicyDenied("access.break_glass", f"role {name} is not declared break_glass in "
                           "querygate.yaml")
    holders = option.get("holders") if isinstance(option, Mapping) else None
    if holders and not set(holders) & set(who.standing_roles):
        raise PolicyDenied("access.break_glass", f"break-glass into {name} is for holders of "
                           f"{', '.join(holders)}")
    limit = settings.break_glass_duration_s
    if isinstance(option, Mapping) and option.get("max_duration"):
        limit = min(limit, parse_duration(option["max_duration"], what="max_duration"))
    seconds = limit if duration is None else _duration(duration, limit)
    request_id = new_id("acc")
    async with writing(conn):
        await conn.execute(
            "INSERT INTO querygate.access_requests (id, user_id, role, reason, duration_s, "
            "break_glass, status, decided_by, decided_at, starts_at, expires_at) VALUES "
            "(%s, %s, %s, %s, %s, true, 'approved', %s, now(), now(), "
            "now() + make_interval(secs => %s))",
            (request_id, who.user_id, name, _reason(reason), seconds, who.user_id, seconds))
    return await get_request(conn, request_id)


async def cancel(conn: psycopg.AsyncConnection[Any], who: Identity, request_id: str) -> AccessRequest:
    """The requester withdraws a pending request or ends an active grant early."""
    request = await get_request(conn, request_id)
    if request.user_id != who.user_id:
        raise PolicyDenied("access.cancel", "only the requester can cancel a request")
    async with writing(conn):
        await conn.execute(
            "UPDATE querygate.access_requests SET status = 'cancelled', revoked_by = %s, "
            "revoked_at = now(), expires_at = CASE WHEN status = 'approved' THEN "
            "least(expires_at, now()) ELSE expires_at END "
            "WHERE id = %s AND status IN ('pending', 'approved')", (who.user_id, request_id))
    return await get_request(conn, request_id)


async def list_requests(conn: psycopg.AsyncConnection[Any], who: Identity,
                        project: Project) -> list[AccessRequest]:
    """The caller's own requests, and the pending ones they may decide."""
    decidable = [r for r in project.roles if set(approver_roles(project, r))
                 & set(who.standing_roles)]
    async with conn.cursor(row_factory=class_row(AccessRequest)) as cur:
        await cur.execute(
            _SELECT + " WHERE a.user_id = %s OR (a.status = 'pending' AND a.role = ANY(%s)) "
            "ORDER BY a.requested_at DESC LIMIT 200", (who.user_id, decidable))
        return await cur.fetchall()


async def revoke_grants(conn: psycopg.AsyncConnection[Any], user_id: str, by: str,
                        *, request_id: str | None = None) -> int:
    """End a person's pending requests and active grants (or just one); returns how many."""
    cur = await conn.execute(
        "UPDATE querygate.access_requests SET status = 'revoked', revoked_by = %s, "
        "revoked_at = now(), expires_at = CASE WHEN status = 'approved' THEN "
        "least(expires_at, now()) ELSE expires_at END "
        "WHERE user_id = %s AND (status = 'pending' OR (status = 'approved' AND expires_at > now())) "
        "AND (%s::text IS NULL OR id = %s)", (by, user_id, request_id, request_id))
    return cur.rowcount


def scope_from(functions: Sequence[object] | None, params: Mapping[str, object] | None) -> Scope:
    if functions is not None and (not isinstance(functions, list)
                                  or not all(isinstance(f, str) for f in functions)):
        raise BadParameters("functions must be a list of function names", parameter="functions")
    if params is not None and not isinstance(params, Mapping):
        raise BadParameters("params must be an object of parameter values", parameter="params")
    return Scope(tuple(functions or ()), {str(k): v for k, v in (params or {}).items()})
