"""The guard that holds approvals to what they were bound to: functions and parameter values.

An identity carries every grant in force; a grant bound to ``get_customer_by_id``
with ``customer_id = 42`` must not widen any other call. Before the query
runs, the guard recomputes the plan with only the grants that cover this call;
if that plan differs from the one the call was admitted with, it refuses.
(``Identity.for_call`` is the same narrowing, for a gateway that applies it
before planning; then this guard never fires.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from querygate.errors import PolicyDenied
from querygate.policy import plan

if TYPE_CHECKING:
    from querygate.guards import CallContext
    from querygate.project import Project


class AccessScopeGuard:
    """Refuses a call that only an out-of-scope grant would allow or widen."""

    def __init__(self, project: Project) -> None:
        self.project = project

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def before_run(self, call: CallContext) -> None:
        who, name = call.identity, call.function.name
        narrowed = who.for_call(name, call.values)
        if narrowed.roles == who.roles:
            return
        roles = [self.project.roles[r] for r in narrowed.roles if r in self.project.roles]
        fair = plan(name, call.function.columns, dict(call.function.filters), roles)
        if not fair.allowed or fair.decisions != call.plan.decisions:
            outside = sorted({g.id for g in who.grants} - {g.id for g in narrowed.grants})
            raise PolicyDenied(
                "access_request.scope",
                f"access request {', '.join(outside)} is bound to other functions or parameter "
                "values; this call is outside it (see `querygate access list`)")

    async def before_release(self, call: CallContext,
                             subjects: tuple[tuple[str, str], ...]) -> None:
        return None
