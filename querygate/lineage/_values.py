"""The lineage of one value, and of the outputs of one relation."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from querygate.lineage._model import Relation, Schema


@dataclass(frozen=True)
class Value:
    """The base columns a value derives from; ``direct`` for an unmodified copy of one."""

    sources: frozenset[str] = frozenset()
    direct: bool = False
    traced: bool = True

    @staticmethod
    def combine(values: Iterable[Value]) -> Value:
        """A value computed from all of ``values``: never direct."""
        sources: set[str] = set()
        traced = True
        for value in values:
            sources |= value.sources
            traced = traced and value.traced
        return Value(frozenset(sources), False, traced)

    @staticmethod
    def union(values: Iterable[Value]) -> Value:
        """One of ``values`` (set operations, recursion): direct only if all are the same copy."""
        values = list(values)
        merged = Value.combine(values)
        direct = all(v.direct for v in values) and merged.traced and len(merged.sources) == 1
        return Value(merged.sources, direct, merged.traced)


UNTRACED = Value(traced=False)


@dataclass(frozen=True)
class Outputs:
    """The named output values of a relation; ``rest`` answers any other name (functions)."""

    columns: tuple[tuple[str, Value], ...]
    rest: Value | None = None

    def lookup(self, name: str) -> Value | None:
        found = [value for column, value in self.columns if column == name]
        if len(found) == 1:
            return found[0]
        return Value.combine(found) if found else self.rest

    def whole(self) -> Value:
        rest = [self.rest] if self.rest is not None else []
        return Value.combine([value for _, value in self.columns] + rest)

    def renamed(self, names: list[str]) -> Outputs:
        columns = [(names[i] if i < len(names) else n, v) for i, (n, v) in enumerate(self.columns)]
        return Outputs(tuple(columns), self.rest)


@dataclass(frozen=True)
class Summary:
    """What a view (or a user function) yields, decides on and reads."""

    outputs: Outputs
    filters: Value
    tables: frozenset[str]
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Environment:
    """How a tracer reaches views and user functions (analysed once per analysis)."""

    schema: Schema
    view: Callable[[Relation], Summary]
    function: Callable[[str], Summary]
