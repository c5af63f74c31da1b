"""The guards a call passes, composed from the project's settings (the contract: ``querygate.guards``)."""

from __future__ import annotations

from querygate.detect import watch_guards
from querygate.guards import Guard
from querygate.identity import AccessScopeGuard
from querygate.limits import build_limits_guard
from querygate.project import Problems, Project
from querygate.purpose import PurposeGuard, load_requirements


def build_guards(project: Project, problems: Problems = None) -> list[Guard]:
    """The guards a project's settings ask for: access scope, purpose, limits, then watched
    subjects (break the glass).

    Nothing opens before ``open()``. Without ``problems`` the first configuration error
    raises (``serve``); given a list, every error is added to it (``check``).
    """
    guards: list[Guard] = [AccessScopeGuard(project)]
    checks, reasons, purposes = load_requirements(project, problems)
    if reasons or purposes:
        guards.append(PurposeGuard(project, reasons, purposes, checks))
    limits = build_limits_guard(project, problems)
    if limits is not None:
        guards.append(limits)
    guards += watch_guards(project, problems)  # watched subjects: break the glass
    return guards
