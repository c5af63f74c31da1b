"""Guards: checks a call passes after policy and before its data is released.

A guard sees who calls, which function, the bound parameters, the reason and
(before release) the data subjects the result holds. It refuses by raising a
``QuerygateError`` (``PolicyDenied``, ``LimitExceeded``); the refusal is
audited like any other. Limits and purpose checks are guards.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from querygate.analysis import AnalysedFunction
    from querygate.identity import Identity
    from querygate.policy import Plan
    from querygate.project import Project


@dataclass(frozen=True)
class CallContext:
    identity: Identity
    function: AnalysedFunction
    plan: Plan
    values: Mapping[str, object]
    reason: str | None
    client_addr: str | None


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


def build_guards(project: Project) -> list[Guard]:
    """The guards a project's settings ask for."""
    return []
