"""Plans: what a set of roles gets from one function, column by column.

A plan is computed once per (function, role set) from the function's lineage
and the project's rules, then applied to every result row. The same verdicts
feed the API response, the audit event and ``querygate check``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from querygate.errors import PolicyDenied
from querygate.policy._decisions import (
    DEFAULT_UNMENTIONED,
    Verdict,
    may_filter,
    most_permissive,
    most_restrictive,
    output_decision,
)
from querygate.policy._masks import MASKS
from querygate.policy._model import Classification, Role


@dataclass(frozen=True)
class ColumnSpec:
    """One output column of a function, as lineage and the live schema describe it."""

    name: str
    sources: frozenset[str]
    tags: tuple[str, ...]
    subject: str | None = None  # the subject type when the value is a subject id


@dataclass(frozen=True)
class ColumnPlan:
    spec: ColumnSpec
    verdict: Verdict

    @cached_property
    def decision(self) -> str:
        return output_decision(self.verdict.decision)


@dataclass(frozen=True)
class Plan:
    """What the caller's roles get from one function, or why they get nothing."""

    function: str
    granted_by: tuple[str, ...]  # "role: pattern"
    columns: tuple[ColumnPlan, ...]
    refusal: Verdict | None  # set when the call must be refused

    @property
    def allowed(self) -> bool:
        return self.refusal is None and bool(self.granted_by)

    def ensure_allowed(self) -> None:
        if self.refusal is not None:
            raise PolicyDenied(self.refusal.rule, self.refusal.reason)

    # A plan is made once per (function, role set) and read on every call: what it derives
    # from its columns is computed once (``cached_property`` sets the frozen instance's dict).
    @cached_property
    def _decisions(self) -> dict[str, str]:
        return {c.spec.name: c.decision for c in self.columns}

    @cached_property
    def _fields(self) -> dict[str, str]:
        return {c.spec.name: c.decision for c in self.columns if c.decision != "allow"}

    @cached_property
    def _visible(self) -> tuple[int, ...]:
        return tuple(i for i, c in enumerate(self.columns) if c.decision != "omit")

    @cached_property
    def _in_clear(self) -> bool:
        return not any(c.decision == "omit" or c.decision in MASKS for c in self.columns)

    @property
    def decisions(self) -> dict[str, str]:
        """Every output column and how it is returned (``allow`` means in clear)."""
        return dict(self._decisions)

    @property
    def fields(self) -> dict[str, str]:
        """Output columns not returned in clear, and how they are treated."""
        return dict(self._fields)

    def visible(self) -> list[int]:
        return list(self._visible)

    def shown(self, rows: Sequence[Sequence[object]]) -> list[tuple[object, ...]]:
        """Omitted columns dropped, nothing masked: for rows whose values were masked at their
        source, inside the statement (ad-hoc SQL)."""
        if len(self._visible) == len(self.columns):
            return list(map(tuple, rows))
        keep = self._visible
        return [tuple(row[i] for i in keep) for row in rows]

    def apply(self, rows: Sequence[Sequence[object]], key: bytes) -> list[list[object]]:
        """Mask and omit: the rows as lists."""
        return [list(row) for row in self.masked(rows, key)]

    def masked(self, rows: Sequence[Sequence[object]], key: bytes) -> list[tuple[object, ...]]:
        """Mask and omit, column by column (each mask runs over a whole column at once); the
        rows as tuples, which the JSON encoder takes as they are."""
        if not rows:
            return []
        if self._in_clear:
            return list(map(tuple, rows))  # every column in clear: the rows as they came
        columns = list(zip(*rows, strict=True))
        kept: list[Sequence[object]] = []
        for i, column in enumerate(self.columns):
            decision = column.decision
            if decision == "omit":
                continue
            mask = MASKS.get(decision)
            kept.append(columns[i] if mask is None else [mask(v, key) for v in columns[i]])
        if not kept:
            return [() for _ in rows]
        return list(zip(*kept, strict=True))


def _role_verdict(role: Role, tags: tuple[str, ...]) -> Verdict:
    if not tags:
        return Verdict("allow", f"{role.name}: untagged", "the column carries no tag")
    per_tag = {t: role.fields.get(t, DEFAULT_UNMENTIONED) for t in tags}
    decision = most_restrictive(list(per_tag.values()))
    tag = next(t for t in tags if per_tag[t] == decision)
    how = "rule" if tag in role.fields else "default for a tag the role does not mention"
    return Verdict(decision, f"{role.name}: {tag} → {decision}", f"{tag} ({how})")


def _combine(verdicts: list[Verdict]) -> Verdict:
    best = most_permissive([v.decision for v in verdicts])
    return next(v for v in verdicts if v.decision == best)


def column_verdict(roles: Sequence[Role], tags: tuple[str, ...]) -> Verdict:
    """What holders of ``roles`` get from one column with ``tags`` (``roles`` not empty)."""
    return _combine([_role_verdict(r, tags) for r in roles])


def plan(
    function: str,
    columns: Sequence[ColumnSpec],
    filters: Mapping[str, tuple[str, ...]],
    roles: Sequence[Role],
    *,
    masked_at_source: bool = False,
) -> Plan:
    """The plan for a caller holding ``roles`` (roles that do not grant it are ignored).

    ``masked_at_source``: the statement reads every protected column already masked (ad-hoc
    SQL), so filtering on a masked column probes only the mask; only ``deny`` refuses."""
    granting = [(r, p) for r in roles if (p := r.grants(function)) is not None]
    if not granting:
        names = ", ".join(r.name for r in roles) or "none"
        denied = Verdict("deny", "not granted", f"no role of yours grants {function} (roles: {names})")
        return Plan(function, (), (), denied)
    active = [r for r, _ in granting]
    planned = tuple(
        ColumnPlan(c, _combine([_role_verdict(r, c.tags) for r in active])) for c in columns
    )
    refusal = _refusal(planned, filters, active, masked_at_source)
    return Plan(function, tuple(f"{r.name}: {p}" for r, p in granting), planned, refusal)


def _refusal(
    columns: tuple[ColumnPlan, ...], filters: Mapping[str, tuple[str, ...]], roles: list[Role],
    masked_at_source: bool,
) -> Verdict | None:
    for column in columns:
        if column.verdict.decision == "deny":
            return Verdict(
                "deny",
                column.verdict.rule,
                f"column {column.spec.name!r} carries {column.verdict.reason.split(' ')[0]}, "
                "which your roles may not read",
            )
    for source, tags in sorted(filters.items()):
        verdict = _combine([_role_verdict(r, tags) for r in roles])
        if masked_at_source and verdict.decision == "deny":
            return Verdict("deny", verdict.rule, f"the statement reads {source}, which your "
                           "roles may not read")
        if not masked_at_source and not may_filter(verdict.decision):
            return Verdict(
                "deny",
                f"filter on {verdict.reason.split(' ')[0]} needs allow or match",
                f"the function filters, joins, groups or orders on {source}, "
                "which your roles may not match on",
            )
    return None


def classify_columns(
    names: Sequence[str],
    sources: Sequence[frozenset[str]],
    subjects: Sequence[str | None],
    classification: Classification,
) -> tuple[ColumnSpec, ...]:
    """Column specs with the tags of every source each column derives from."""
    specs = []
    for name, srcs, subject in zip(names, sources, subjects, strict=True):
        tags = sorted({t for s in srcs for t in classification.tags_of(s)})
        specs.append(ColumnSpec(name, srcs, tuple(tags), subject))
    return tuple(specs)
