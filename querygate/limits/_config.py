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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from querygate.errors import ProjectError
from querygate.project import Problems, did_you_mean, gathering, line_of, unknown_key

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
TOP_KEYS = ("mode", "default", "users", "functions")


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


def _kinds(value: object, what: str, where: str, line: int | None,
           problems: Problems = None) -> Kinds:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ProjectError(f"{what} must map limit kinds to numbers ({', '.join(KINDS)})",
                           path=where, line=line)
    kinds: Kinds = {}
    for kind, number in value.items():
        at = line_of(value, kind) or line
        with gathering(problems):
            if kind not in KINDS:
                raise ProjectError(f"{what}: unknown limit {kind!r}{did_you_mean(kind, KINDS)} "
                                   f"(known: {', '.join(KINDS)})", path=where, line=at)
            if isinstance(number, bool) or not isinstance(number, int) or number <= 0:
                raise ProjectError(f"{what}.{kind} must be a positive whole number, not "
                                   f"{number!r}", path=where, line=at)
            kinds[str(kind)] = int(number)
    return kinds


def _table(value: object, what: str, where: str, line: int | None,
           problems: Problems = None) -> dict[str, Kinds]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ProjectError(f"{what} must be a mapping", path=where, line=line)
    table: dict[str, Kinds] = {}
    for key, kinds in value.items():
        name = str(key).lower() if "@" in str(key) else str(key)
        with gathering(problems):
            table[name] = _kinds(kinds, f"{what}.{key}", where, line_of(value, key) or line,
                                 problems)
    return table


def _patterns(functions: Mapping[str, Kinds], raw: object, catalog: Iterable[str], where: str,
              problems: Problems) -> None:
    """Every ``limits.functions`` entry counts some function: one that matches none limits nothing."""
    names = list(catalog)
    for pattern in functions:
        with gathering(problems):
            if not any(fnmatch.fnmatchcase(f, pattern) for f in names):
                raise ProjectError(f"limits.functions: {pattern!r} matches no function in "
                                   f"queries/{did_you_mean(pattern, names)}", path=where,
                                   line=line_of(raw, pattern))


def load_limits(project: Any, problems: Problems = None) -> LimitsConfig:
    """The project's limits, validated (file, line and message name the wrong key).

    Given a list, ``problems`` gathers every error (``check``); without, the first one raises.
    """
    where = str(project.root / "querygate.yaml")
    top: Mapping[str, Any] = project.section("limits")
    for key in top:
        with gathering(problems):
            if key not in TOP_KEYS:
                raise ProjectError(unknown_key("limits", key, TOP_KEYS), path=where,
                                   line=line_of(top, key))
    mode = top.get("mode", "enforce")
    with gathering(problems):
        if mode not in ("enforce", "warn"):
            raise ProjectError(f"limits.mode must be enforce or warn, not {mode!r}"
                               f"{did_you_mean(mode, ('enforce', 'warn'))}", path=where,
                               line=line_of(top, "mode"))
    specs = project.section("roles")
    roles: dict[str, Kinds] = {}
    for name, role in project.roles.items():
        with gathering(problems):
            roles[name] = _kinds(role.options.get("limits"), f"role {name!r} limits", where,
                                 line_of(specs.get(name), "limits"), problems)
    default: Kinds = {}
    users: dict[str, Kinds] = {}
    functions: dict[str, Kinds] = {}
    with gathering(problems):
        default = _kinds(top.get("default"), "limits.default", where, line_of(top, "default"),
                         problems)
    with gathering(problems):
        users = _table(top.get("users"), "limits.users", where, line_of(top, "users"), problems)
    with gathering(problems):
        functions = _table(top.get("functions"), "limits.functions", where,
                           line_of(top, "functions"), problems)
    _patterns(functions, top.get("functions"), project.catalog, where, problems)
    return LimitsConfig({k: v for k, v in roles.items() if v}, default, users, functions,
                        str(mode) if mode in ("enforce", "warn") else "enforce")
