"""Guards: checks a call passes after policy and before its data is released.

A guard sees who calls, which function, the bound parameters, the reason and
(before release) the data subjects the result holds. It refuses by raising a
``QuerygateError`` (``PolicyDenied``, ``LimitExceeded``); the refusal is
audited like any other. Limits and purpose checks are guards::

    querygate.identity.AccessScopeGuard  approvals stay bound to what they were granted for
    querygate.purpose.PurposeGuard   reasons, then a purpose for every subject released
    querygate.limits.LimitsGuard     rate limits, then distinct-subject quotas (PostgreSQL)

What a guard finds without refusing (a purpose miss in ``warn`` mode) it notes
in the call's audit event, under ``context``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from psycopg_pool import AsyncConnectionPool

if TYPE_CHECKING:
    import psycopg

    from querygate.analysis import AnalysedFunction
    from querygate.identity import Identity
    from querygate.policy import Plan
    from querygate.project import Problems, Project
    from querygate.settings import Settings


@dataclass(frozen=True)
class CallContext:
    identity: Identity
    function: AnalysedFunction
    plan: Plan
    values: Mapping[str, object]
    reason: str | None
    client_addr: str | None
    notes: dict[str, str] = field(default_factory=dict, compare=False)  # this call's findings


class Guard(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def before_run(self, call: CallContext) -> None:
        """Refuse before the query runs (reasons, rate limits)."""
        ...

    async def before_release(self, call: CallContext,
                             subjects: tuple[tuple[str, str], ...]) -> None:
        """Refuse after the query, before any row leaves (purpose, distinct-subject quotas)."""
        ...


def build_guards(project: Project, problems: Problems = None) -> list[Guard]:
    """The guards a project's settings ask for: access scope, purpose, then limits.

    Nothing opens before ``open()``. Without ``problems`` the first configuration error
    raises (``serve``); given a list, every error is added to it (``check``).
    """
    from querygate.detect import watch_guards
    from querygate.identity import AccessScopeGuard
    from querygate.limits import build_limits_guard
    from querygate.purpose import PurposeGuard, load_requirements

    guards: list[Guard] = [AccessScopeGuard(project)]
    checks, reasons, purposes = load_requirements(project, problems)
    if reasons or purposes:
        guards.append(PurposeGuard(project, reasons, purposes, checks))
    limits = build_limits_guard(project, problems)
    if limits is not None:
        guards.append(limits)
    guards += watch_guards(project, problems)  # watched subjects: break the glass
    return guards


def note(call: CallContext, key: str, value: str) -> None:
    """Record a guard's finding in this call's audit event (its ``context``). The finding
    belongs to the call: an identity is shared by every call a token check resolved together."""
    call.notes[key] = value


def small_pool(url: str, settings: Settings, *, name: str,
               read_only: bool) -> AsyncConnectionPool[Any]:
    """A guard's own pool: a few connections, autocommit, the statement timeout."""

    async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.set_autocommit(True)
        await conn.execute(f"SET statement_timeout = {int(settings.statement_timeout_ms)}; "
                           f"SET lock_timeout = {int(settings.statement_timeout_ms)}")
        if read_only:
            await conn.execute("SET default_transaction_read_only = on")

    return AsyncConnectionPool(
        url, min_size=1, max_size=4, timeout=settings.pool_timeout_s, open=False,
        configure=configure, check=AsyncConnectionPool.check_connection, name=name,
        kwargs={"application_name": name, "connect_timeout": 5},
    )
