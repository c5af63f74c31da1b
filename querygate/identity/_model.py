"""Who is calling, as values: the identity, its time-boxed grants, and what an agent acts for."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Grant:
    """An approved access request (or a break-glass) in force now."""

    id: str
    role: str
    expires_at: dt.datetime
    break_glass: bool = False
    functions: tuple[str, ...] = ()  # empty: every function the role grants
    params: Mapping[str, str] = field(default_factory=dict)  # parameter -> required value

    def covers(self, function: str, values: Mapping[str, object]) -> bool:
        """True when this grant applies to a call of ``function`` with these parameter values."""
        if self.functions and function not in self.functions:
            return False
        return all(name in values and param_text(values[name]) == expected
                   for name, expected in self.params.items())

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Grant:
        expires = row["expires_at"]
        if isinstance(expires, str):
            expires = dt.datetime.fromisoformat(expires)
        return cls(str(row["id"]), str(row["role"]), expires, bool(row.get("break_glass")),
                   tuple(row.get("functions") or ()),
                   {str(k): param_text(v) for k, v in (row.get("params") or {}).items()})


def param_text(value: object) -> str:
    """A parameter value as grants compare it: JSON-ish text, the same from CLI, API and call."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return json.dumps([param_text(v) for v in value])
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


@dataclass(frozen=True)
class Identity:
    """Who is calling: resolved from a token on every call, never cached."""

    user_id: str
    email: str
    kind: str
    roles: tuple[str, ...]
    token_id: str
    context: Mapping[str, str] = field(default_factory=dict)  # recorded in every audit event
    grants: tuple[Grant, ...] = ()  # JIT and break-glass grants whose roles are in ``roles``
    base_roles: tuple[str, ...] | None = None  # roles held without any grant (None: ``roles``)
    on_behalf_of: str | None = None  # the person an agent acts for (their user id)

    @property
    def standing_roles(self) -> tuple[str, ...]:
        """Roles held without elevation: what approvals and agents are judged by."""
        return self.roles if self.base_roles is None else self.base_roles

    def for_call(self, function: str, values: Mapping[str, object]) -> Identity:
        """This identity narrowed to the grants that cover one call (function and values)."""
        covering = tuple(g for g in self.grants if g.covers(function, values))
        if covering == self.grants:
            return self
        return with_grants(replace(self, grants=()), self.standing_roles, covering)


def with_grants(who: Identity, standing: tuple[str, ...], grants: tuple[Grant, ...]) -> Identity:
    """``who`` holding its standing roles plus the roles of ``grants``, with audit context."""
    roles = tuple(dict.fromkeys([*standing, *(g.role for g in grants)]))
    context = {k: v for k, v in who.context.items()
               if k not in ("access_request", "break_glass")}
    if grants:
        context["access_request"] = ",".join(g.id for g in grants)
    if any(g.break_glass for g in grants):
        context["break_glass"] = "true"
    return replace(who, roles=roles, base_roles=standing, grants=grants, context=context)


def acting_for(agent: Identity, person_id: str, person_email: str,
               person_roles: tuple[str, ...]) -> Identity:
    """An agent acting for a person: never more than that person's standing roles."""
    roles = tuple(r for r in agent.roles if r in person_roles)
    context = {**agent.context, "on_behalf_of": person_id, "on_behalf_of_email": person_email}
    return replace(agent, roles=roles, base_roles=roles, grants=(), context=context,
                   on_behalf_of=person_id)
