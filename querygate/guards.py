"""Guards: checks a call passes after policy and before its data is released.

A guard sees who calls, which function, the bound parameters, the reason and
(before release) the data subjects the result holds. It refuses by raising a
``QuerygateError`` (``PolicyDenied``, ``LimitExceeded``); the refusal is
audited like any other.

This module is the contract only: it imports no guard. The implementations import it, and
the gateway composes them (``querygate.gateway.build_guards``)::

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

    from querygate.gateway import AnalysedFunction
    from querygate.identity import Identity
    from querygate.policy import Plan
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


def note(call: CallContext, key: str, value: str) -> None:
    """Record a guard's finding in this call's audit event (its ``context``). The finding
    belongs to the call: an identity is shared by every call a token check resolved together."""
    call.notes[key] = value


async def small_pool(url: str, settings: Settings, *, name: str,
                     read_only: bool) -> AsyncConnectionPool[Any]:
    """A guard's own pool, opened: a few connections, autocommit, the statement timeout. A
    database that cannot be reached within twice the pool timeout stops the start."""

    async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.set_autocommit(True)
        await conn.execute(f"SET statement_timeout = {int(settings.statement_timeout_ms)}; "
                           f"SET lock_timeout = {int(settings.statement_timeout_ms)}")
        if read_only:
            await conn.execute("SET default_transaction_read_only = on")

    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        url, min_size=1, max_size=4, timeout=settings.pool_timeout_s, open=False,
        configure=configure, check=AsyncConnectionPool.check_connection, name=name,
        kwargs={"application_name": name, "connect_timeout": 5},
    )
    await pool.open(wait=True, timeout=settings.pool_timeout_s * 2)
    return pool


__all__ = ["CallContext", "Guard", "note", "small_pool"]
