"""Decisions and the one order that combines them.

From most permissive to most restrictive::

    allow < match < mask.last4 < mask.email < mask.year < mask.hash < mask.full
          < mask.null < omit < deny

- ``match``: may filter on the column, never sees it (returned as ``mask.full``).
- Several tags on one column: the most restrictive decision wins.
- Several roles granting one function: the most permissive decision wins.
- A tag a role does not mention: ``mask.full`` (never returned in clear).
"""

from __future__ import annotations

from dataclasses import dataclass

ORDER = (
    "allow",
    "match",
    "mask.last4",
    "mask.email",
    "mask.year",
    "mask.hash",
    "mask.full",
    "mask.null",
    "omit",
    "deny",
)
DECISIONS = frozenset(ORDER)
MASKS = frozenset(d for d in ORDER if d.startswith("mask."))
DEFAULT_UNMENTIONED = "mask.full"
_RANK = {d: i for i, d in enumerate(ORDER)}


def most_restrictive(decisions: list[str]) -> str:
    return max(decisions, key=_RANK.__getitem__)


def most_permissive(decisions: list[str]) -> str:
    return min(decisions, key=_RANK.__getitem__)


def may_filter(decision: str) -> bool:
    """Whether a caller may filter, join, group or order on a column with this decision."""
    return decision in ("allow", "match")


def output_decision(decision: str) -> str:
    """What happens to a returned value: ``match`` lets filter, but shows nothing."""
    return "mask.full" if decision == "match" else decision


@dataclass(frozen=True)
class Verdict:
    """A decision with the rule that produced it and why."""

    decision: str
    rule: str
    reason: str
