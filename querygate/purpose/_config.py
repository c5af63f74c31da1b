"""Reasons and purpose checks as querygate.yaml declares them, validated with clear messages.

::

    purpose:                         # named checks: SQL that returns the subject ids it allows
      open_ticket:
        subject: customer
        describe: an open ticket for the customer must be assigned to you
        sql: |
          SELECT t.customer_id::text FROM support_tickets t
          WHERE t.customer_id::text = ANY(:subject_ids)
            AND t.assignee_email = :user_email AND t.status IN ('open', 'pending')
    roles:
      support:
        requires_reason: {pattern: "^TICKET-[0-9]+$", mode: enforce}
        purpose: {check: open_ticket, mode: enforce, functions: [get_customer_by_id]}

``requires_reason`` may also be ``true`` (any text) or a pattern; ``purpose`` may be
just a check's name. Modes: ``enforce`` (refuse), ``warn`` (allow, record in the
audit event, alert), ``off``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from querygate.catalog import placeholders, to_psycopg
from querygate.errors import ProjectError

MODES = ("off", "warn", "enforce")
PARAMETERS = frozenset({"user_id", "user_email", "subject_type", "subject_ids", "reason",
                        "function"})


@dataclass(frozen=True)
class Check:
    """A named purpose check: ``sql`` returns, of ``:subject_ids``, those the purpose allows."""

    name: str
    subject: str
    sql: str  # with psycopg placeholders; values are always bound, never formatted in
    describe: str  # what the purpose is, in the words a refusal uses


@dataclass(frozen=True)
class Requirement:
    """One role's requirement: a reason matching ``pattern`` or a purpose ``check``."""

    role: str
    mode: str
    functions: tuple[str, ...]  # name patterns; empty = every function the role grants
    pattern: re.Pattern[str] | None = None
    check: str | None = None
    alert_each: bool = False  # warn mode: an alert for every call outside its purpose

    def covers(self, function: str) -> bool:
        return not self.functions or any(fnmatch.fnmatchcase(function, p) for p in self.functions)


def _fail(message: str, where: str) -> ProjectError:
    return ProjectError(message, path=where)


def load_checks(raw: Mapping[str, Any], where: str) -> dict[str, Check]:
    """The ``purpose:`` section: every check with a subject type and SQL using known names."""
    checks: dict[str, Check] = {}
    for name, spec in raw.items():
        if not isinstance(spec, Mapping) or not isinstance(spec.get("sql"), str) \
                or not isinstance(spec.get("subject"), str):
            raise _fail(f"purpose check {name!r} needs `subject:` (a subject type such as "
                        "customer) and `sql:` (returning the subject ids it allows)", where)
        unknown = {p for _, _, p in placeholders(spec["sql"])} - PARAMETERS
        if unknown:
            raise _fail(f"purpose check {name!r} uses :{sorted(unknown)[0]}; the check may use "
                        f":{', :'.join(sorted(PARAMETERS))}", where)
        describe = spec.get("describe") or f"purpose check {name} must allow it"
        checks[str(name)] = Check(str(name), spec["subject"], to_psycopg(spec["sql"]),
                                  str(describe))
    return checks


def _mode(value: object, what: str, where: str) -> str:
    if value not in MODES:
        raise _fail(f"{what}: mode must be one of {', '.join(MODES)}", where)
    return str(value)


def _functions(value: object, what: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(f"{what}: functions must be a list of names or patterns", where)
    return tuple(value)


def reason_requirement(role: str, value: object, where: str) -> Requirement | None:
    """A role's ``requires_reason``: true, a pattern, or {pattern, mode, functions}."""
    what = f"role {role!r} requires_reason"
    if value is None or value is False:
        return None
    spec: Mapping[str, Any] = value if isinstance(value, Mapping) else {"pattern": value}
    pattern = spec.get("pattern", True)
    if pattern is True:
        compiled = None
    elif isinstance(pattern, str):
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise _fail(f"{what}: {pattern!r} is not a regular expression ({exc})", where) from None
    else:
        raise _fail(f"{what} must be true, a pattern, or {{pattern, mode, functions}}", where)
    return Requirement(role, _mode(spec.get("mode", "enforce"), what, where),
                       _functions(spec.get("functions"), what, where), pattern=compiled)


def purpose_requirement(role: str, value: object, checks: Mapping[str, Check],
                        where: str) -> Requirement | None:
    """A role's ``purpose``: a check's name, or {check, mode, functions, alert}."""
    what = f"role {role!r} purpose"
    if value is None:
        return None
    spec: Mapping[str, Any] = value if isinstance(value, Mapping) else {"check": value}
    check = spec.get("check")
    if check not in checks:
        known = ", ".join(sorted(checks)) or "none; declare them under a top-level purpose:"
        raise _fail(f"{what} names check {check!r}, which is not declared (checks: {known})",
                    where)
    alert = spec.get("alert", "pattern")
    if alert not in ("each", "pattern"):
        raise _fail(f"{what}: alert must be `each` (every call outside its purpose) or "
                    "`pattern` (the detector's rules decide)", where)
    return Requirement(role, _mode(spec.get("mode", "enforce"), what, where),
                       _functions(spec.get("functions"), what, where), check=str(check),
                       alert_each=alert == "each")


def load_requirements(project: Any) -> tuple[dict[str, Check], dict[str, Requirement],
                                             dict[str, Requirement]]:
    """Every check and every role's reason and purpose requirements, validated."""
    where = str(project.root / "querygate.yaml")
    checks = load_checks(project.section("purpose"), where)
    reasons: dict[str, Requirement] = {}
    purposes: dict[str, Requirement] = {}
    for name, role in project.roles.items():
        reason = reason_requirement(name, role.options.get("requires_reason"), where)
        purpose = purpose_requirement(name, role.options.get("purpose"), checks, where)
        for requirement in (reason, purpose):
            for pattern in requirement.functions if requirement else ():
                if role.grants(pattern) is None and not any(
                        fnmatch.fnmatchcase(f, pattern) and role.grants(f)
                        for f in project.catalog):
                    raise _fail(f"role {name!r}: {pattern!r} under requires_reason or purpose "
                                "matches no function the role grants", where)
        if reason:
            reasons[name] = reason
        if purpose:
            purposes[name] = purpose
    return checks, reasons, purposes
