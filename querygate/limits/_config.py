"""Limits as querygate.yaml declares them: per role, per user, per function.

::

    roles:
      support:
        limits: {calls_per_minute: 60, subjects_per_day: 150, subjects_per_30_days: 1500}
    limits:
      mode: enforce                     # or warn: allow, and note it in the audit event
      default: {calls_per_minute: 120}  # for people whose roles set no limit of a kind
      users:
        alice@example.com: {subjects_per_day: 400}
      functions:
        search_customers: {calls_per_minute: 10}

A person's limit of a kind is the largest any of their roles sets (roles that
set none do not lift it), else the default; a ``users`` entry replaces it.
Function limits count each person's calls of that function on their own.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from querygate.errors import ProjectError

if TYPE_CHECKING:
    from querygate.identity import Identity

KINDS: dict[str, tuple[str, int]] = {
    "calls_per_minute": ("calls", 60),
    "calls_per_hour": ("calls", 3600),
    "calls_per_day": ("calls", 86_400),
    "subjects_per_day": ("subjects", 1),
    "subjects_per_30_days": ("subjects", 30),
}
"""Each kind: what it counts and its window (seconds for calls, days for subjects)."""

Kinds = dict[str, int]


@dataclass(frozen=True)
class Limit:
    kind: str
    value: int
    source: str  # says where it comes from: "role support", "user alice@…", "function x"
    scope: str  # "*" (everything the person calls) or the function it counts

    @property
    def counts(self) -> str:
        return KINDS[self.kind][0]

    @property
    def window(self) -> int:
        return KINDS[self.kind][1]


@dataclass(frozen=True)
class LimitsConfig:
    roles: Mapping[str, Kinds]
    default: Kinds
    users: Mapping[str, Kinds]
    functions: Mapping[str, Kinds]
    mode: str = "enforce"

    def __bool__(self) -> bool:
        return bool(self.roles or self.default or self.users or self.functions)

    def for_call(self, who: Identity, function: str) -> list[Limit]:
        """Every limit that counts this call."""
        personal: dict[str, Limit] = {}
        for role in who.roles:
            for kind, value in self.roles.get(role, {}).items():
                if kind not in personal or value > personal[kind].value:
                    personal[kind] = Limit(kind, value, f"role {role}", "*")
        for kind, value in self.default.items():
            personal.setdefault(kind, Limit(kind, value, "limits.default", "*"))
        own = self.users.get(who.email.lower()) or self.users.get(who.user_id) or {}
        for kind, value in own.items():
            personal[kind] = Limit(kind, value, f"user {who.email}", "*")
        found = list(personal.values())
        for pattern, kinds in self.functions.items():
            if fnmatch.fnmatchcase(function, pattern):
                found += [Limit(k, v, f"function {pattern}", function) for k, v in kinds.items()]
        return found


def _kinds(value: object, what: str, where: str) -> Kinds:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ProjectError(f"{what} must map limit kinds to numbers ({', '.join(KINDS)})",
                           path=where)
    for kind, number in value.items():
        if kind not in KINDS:
            raise ProjectError(f"{what}: unknown limit {kind!r}; known: {', '.join(KINDS)}",
                               path=where)
        if isinstance(number, bool) or not isinstance(number, int) or number <= 0:
            raise ProjectError(f"{what}.{kind} must be a positive whole number", path=where)
    return {str(k): int(v) for k, v in value.items()}


def _table(value: object, what: str, where: str) -> dict[str, Kinds]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ProjectError(f"{what} must be a mapping", path=where)
    return {str(k).lower() if "@" in str(k) else str(k): _kinds(v, f"{what}.{k}", where)
            for k, v in value.items()}


def load_limits(project: Any) -> LimitsConfig:
    """The project's limits, validated (file and message name the wrong key)."""
    where = str(project.root / "querygate.yaml")
    top: Mapping[str, Any] = project.section("limits")
    unknown = set(top) - {"mode", "default", "users", "functions"}
    if unknown:
        raise ProjectError(f"limits: unknown key {sorted(unknown)[0]!r}; known: mode, default, "
                           "users, functions", path=where)
    mode = top.get("mode", "enforce")
    if mode not in ("enforce", "warn"):
        raise ProjectError("limits.mode must be enforce or warn", path=where)
    roles = {name: _kinds(role.options.get("limits"), f"role {name!r} limits", where)
             for name, role in project.roles.items()}
    return LimitsConfig({k: v for k, v in roles.items() if v},
                        _kinds(top.get("default"), "limits.default", where),
                        _table(top.get("users"), "limits.users", where),
                        _table(top.get("functions"), "limits.functions", where), str(mode))
