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
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from querygate.catalog import placeholders, to_psycopg
from querygate.errors import ProjectError
from querygate.project import Problems, did_you_mean, gathering, line_of, unknown_key

MODES = ("off", "warn", "enforce")
PARAMETERS = frozenset({"user_id", "user_email", "subject_type", "subject_ids", "reason",
                        "function"})
CHECK_KEYS = ("subject", "describe", "sql")
REASON_KEYS = ("pattern", "mode", "functions")
PURPOSE_KEYS = ("check", "mode", "alert", "functions")


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


@dataclass(frozen=True)
class _Where:
    """The file, and the line to name when a value has none of its own."""

    path: str
    line: int | None = None

    def fail(self, message: str, spec: object = None, key: object = None) -> ProjectError:
        return ProjectError(message, path=self.path, line=line_of(spec, key) or self.line)


def subject_types(project: Any) -> frozenset[str]:
    """The subject types the classification declares (``subject:`` and ``subject_ref:``)."""
    tables = project.classification.tables.values()
    return frozenset({t.subject for t in tables if t.subject}
                     | {s for t in tables for s in t.subject_refs})


def load_check(name: str, spec: object, subjects: Collection[str], where: _Where) -> Check:
    """One check of the ``purpose:`` section: a declared subject type and SQL using known names."""
    what = f"purpose check {name!r}"
    if not isinstance(spec, Mapping) or not isinstance(spec.get("sql"), str) \
            or not isinstance(spec.get("subject"), str):
        raise where.fail(f"{what} needs `subject:` (a subject type such as customer) and `sql:` "
                         "(returning the subject ids it allows)")
    for key in spec:
        if key not in CHECK_KEYS:
            raise where.fail(unknown_key(what, key, CHECK_KEYS), spec, key)
    subject = spec["subject"]
    if subject not in subjects:
        declared = ", ".join(sorted(subjects)) or "none"
        raise where.fail(f"{what}: subject {subject!r} is not a subject type any table declares"
                         f"{did_you_mean(subject, subjects)} (declared: {declared}; a table "
                         "declares one under classification with subject: or subject_ref:)",
                         spec, "subject")
    try:
        unknown = {p for _, _, p in placeholders(spec["sql"])} - PARAMETERS
    except ValueError as exc:
        raise where.fail(f"{what}: {exc}", spec, "sql") from None
    if unknown:
        raise where.fail(f"{what} uses :{sorted(unknown)[0]}; the check may use "
                         f":{', :'.join(sorted(PARAMETERS))}", spec, "sql")
    describe = spec.get("describe") or f"purpose check {name} must allow it"
    return Check(str(name), subject, to_psycopg(spec["sql"]), str(describe))


def load_checks(raw: Mapping[str, Any], subjects: Collection[str], where: str,
                problems: Problems = None) -> dict[str, Check]:
    """The ``purpose:`` section: every check that is valid."""
    checks: dict[str, Check] = {}
    for name, spec in raw.items():
        with gathering(problems):
            checks[str(name)] = load_check(str(name), spec, subjects, _Where(where,
                                                                            line_of(raw, name)))
    return checks


def _mode(spec: Mapping[str, Any], what: str, where: _Where) -> str:
    value = spec.get("mode", "enforce")
    if value not in MODES:
        raise where.fail(f"{what}: mode must be one of {', '.join(MODES)}, not {value!r}"
                         f"{did_you_mean(value, MODES)}", spec, "mode")
    return str(value)


def _functions(spec: Mapping[str, Any], what: str, where: _Where) -> tuple[str, ...]:
    value = spec.get("functions")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise where.fail(f"{what}: functions must be a list of names or patterns", spec,
                         "functions")
    return tuple(value)


def _known(spec: Mapping[str, Any], keys: tuple[str, ...], what: str, where: _Where) -> None:
    for key in spec:
        if key not in keys:
            raise where.fail(unknown_key(what, key, keys), spec, key)


def reason_requirement(role: str, value: object, where: _Where) -> Requirement | None:
    """A role's ``requires_reason``: true, a pattern, or {pattern, mode, functions}."""
    what = f"role {role!r} requires_reason"
    if value is None or value is False:
        return None
    spec: Mapping[str, Any] = value if isinstance(value, Mapping) else {"pattern": value}
    _known(spec, REASON_KEYS, what, where)
    pattern = spec.get("pattern", True)
    if pattern is True:
        compiled = None
    elif isinstance(pattern, str):
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise where.fail(f"{what}: {pattern!r} is not a regular expression ({exc}); write "
                             "one such as ^TICKET-[0-9]+$, with \\ before ( [ + * ? to match them "
                             "as they are",
                             spec, "pattern") from None
    else:
        raise where.fail(f"{what} must be true, a pattern, or {{pattern, mode, functions}}")
    return Requirement(role, _mode(spec, what, where), _functions(spec, what, where),
                       pattern=compiled)


def purpose_requirement(role: str, value: object, declared: Collection[str],
                        where: _Where) -> Requirement | None:
    """A role's ``purpose``: a check's name, or {check, mode, functions, alert}."""
    what = f"role {role!r} purpose"
    if value is None:
        return None
    spec: Mapping[str, Any] = value if isinstance(value, Mapping) else {"check": value}
    _known(spec, PURPOSE_KEYS, what, where)
    check = spec.get("check")
    if not isinstance(check, str) or check not in declared:
        known = ", ".join(sorted(declared)) or "none; declare them under a top-level purpose:"
        raise where.fail(f"{what} names check {check!r}, which is not declared"
                         f"{did_you_mean(check, declared)} (checks: {known})", spec, "check")
    alert = spec.get("alert", "pattern")
    if alert not in ("each", "pattern"):
        raise where.fail(f"{what}: alert must be `each` (every call outside its purpose) or "
                         "`pattern` (the detector's rules decide)", spec, "alert")
    return Requirement(role, _mode(spec, what, where), _functions(spec, what, where),
                       check=str(check), alert_each=alert == "each")


def _covered(project: Any, role: Any, requirement: Requirement, what: str, where: _Where,
             problems: Problems) -> None:
    """Every ``functions:`` entry names a function, and one the role grants."""
    for pattern in requirement.functions:
        if role.grants(pattern) is not None or any(
                fnmatch.fnmatchcase(f, pattern) and role.grants(f) for f in project.catalog):
            continue
        with gathering(problems):
            if not any(fnmatch.fnmatchcase(f, pattern) for f in project.catalog):
                raise where.fail(f"{what}: functions names {pattern!r}, which matches no "
                                 f"function in queries/{did_you_mean(pattern, project.catalog)}")
            raise where.fail(f"{what}: functions names {pattern!r}, which matches no function "
                             f"the role grants (role {role.name!r} grants: "
                             f"{', '.join(role.functions)}); grant it under the role's "
                             "functions:, or leave it out here")


def load_requirements(project: Any, problems: Problems = None) -> tuple[
        dict[str, Check], dict[str, Requirement], dict[str, Requirement]]:
    """Every check and every role's reason and purpose requirements, validated.

    Given a list, ``problems`` gathers every error (``check``); without, the first one raises.
    """
    where = str(project.root / "querygate.yaml")
    section = project.section("purpose")
    checks = load_checks(section, subject_types(project), where, problems)
    reasons: dict[str, Requirement] = {}
    purposes: dict[str, Requirement] = {}
    specs = project.section("roles")
    for name, role in project.roles.items():
        for key, table in (("requires_reason", reasons), ("purpose", purposes)):
            at = _Where(where, line_of(specs.get(name), key))
            value = role.options.get(key)
            with gathering(problems):
                requirement = reason_requirement(name, value, at) if key == "requires_reason" \
                    else purpose_requirement(name, value, section, at)
                if requirement is not None:
                    table[name] = requirement
            if name in table:
                listed = _Where(where, line_of(value, "functions") or at.line)
                _covered(project, role, table[name], f"role {name!r} {key}", listed, problems)
    return checks, reasons, purposes
