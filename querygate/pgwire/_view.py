"""What the catalog and the statements need from the gateway: the functions a caller may call,
their result columns as this front door sends them, and (for ad-hoc roles) the relations and
columns the caller may read, each with the decision its masks make."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from querygate.gateway import Gateway
from querygate.identity import Identity
from querygate.pgwire import _types as t
from querygate.pgwire._codec import Field
from querygate.policy import ColumnSpec, Plan, Role, plan

Record = dict[str, object]


@dataclass(frozen=True)
class Rows:
    """A result built here: column names, their type OIDs, rows."""

    names: list[str]
    oids: list[int]
    rows: list[list[object]]


@dataclass(frozen=True)
class ReadableColumn:
    """A column an ad-hoc role may read: its type as sent (masked: text) and the decision."""

    name: str
    oid: int
    type_text: str  # as ``format_type`` writes it
    decision: str  # allow, or the mask applied

    @property
    def note(self) -> str | None:
        return None if self.decision == "allow" else f"masked: {self.decision}"


@dataclass(frozen=True)
class Readable:
    """A relation an ad-hoc role may read, with the columns it may read of it."""

    oid: int  # this front door's own, stable for a caller
    schema: str
    name: str
    is_view: bool
    columns: tuple[ReadableColumn, ...]


class GatewayView:
    """Functions, plans, schema and roles, as the caller may see them."""

    def __init__(self, gateway: Gateway, types: Mapping[str, tuple[int, ...]]) -> None:
        self.gateway = gateway
        self.types = types
        # RowDescriptions of call results by (function, columns, masked columns)
        self.fields: dict[tuple[str, tuple[str, ...], frozenset[str]], list[Field]] = {}

    def callable(self, who: Identity) -> list[tuple[str, str, list[tuple[str, str]], Plan,
                                                    list[tuple[str, int]]]]:
        """(name, description, parameters, plan, visible columns) of each callable function."""
        out = []
        for analysed in self.gateway.callable_by(who):
            plan_ = self.gateway.plan_for(analysed.name, who.roles)
            params = [(p.name, p.type) for p in analysed.function.parameters]
            out.append((analysed.name, analysed.function.description, params, plan_,
                        result_columns(plan_, self.types.get(analysed.name, ()))))
        return out

    def adhoc_roles(self, who: Identity) -> list[Role]:
        roles = self.gateway.project.roles
        return [roles[r] for r in who.roles if r in roles and roles[r].options.get("adhoc") is True]

    def readable(self, who: Identity) -> list[Readable]:
        """For ad-hoc roles: each relation with the columns they may read (none: left out)."""
        roles = [_every_function(r) for r in self.adhoc_roles(who)]
        if not roles:
            return []
        out: list[Readable] = []
        classification = self.gateway.classification
        relations = sorted(self.gateway.schema.relations.values(), key=lambda r: r.qualified)
        for relation in relations:
            specs = [ColumnSpec(c.name, frozenset({f"{relation.qualified}.{c.name}"}),
                                classification.tags_of(f"{relation.qualified}.{c.name}"))
                     for c in relation.columns]
            decided = plan("adhoc", specs, {}, roles)
            columns = []
            for column, planned in zip(relation.columns, decided.columns, strict=True):
                decision = "deny" if planned.verdict.decision == "deny" else planned.decision
                if decision == "deny":
                    continue
                clear = decision == "allow"
                columns.append(ReadableColumn(column.name,
                                              oid_of_type(column.type) if clear else t.TEXT,
                                              column.type if clear else "text", decision))
            if columns:
                out.append(Readable(800_000 + len(out), relation.schema, relation.name,
                                    relation.is_view, tuple(columns)))
        return out


def _every_function(role: Role) -> Role:
    return dataclasses.replace(role, functions=("*",))


def result_columns(plan_: Plan, oids: Sequence[int]) -> list[tuple[str, int]]:
    """The visible columns of a function for a plan: masked ones as text."""
    out = []
    for i in plan_.visible():
        column = plan_.columns[i]
        oid = oids[i] if i < len(oids) and column.decision == "allow" else t.TEXT
        out.append((column.spec.name, wire_oid(oid)))
    return out


def wire_oid(oid: int) -> int:
    """A type this front door encodes in both formats, else text."""
    if oid in t.BINARY_OUT or t.ELEMENT_OF.get(oid) in t.BINARY_OUT:
        return oid
    return t.TEXT


_TYPE_NAMES = {"integer": t.INT4, "bigint": t.INT8, "smallint": t.INT2, "text": t.TEXT,
               "boolean": t.BOOL, "numeric": t.NUMERIC, "date": t.DATE, "uuid": t.UUID,
               "timestamp with time zone": t.TIMESTAMPTZ, "jsonb": t.JSONB, "json": t.JSON,
               "timestamp without time zone": t.TIMESTAMP, "double precision": t.FLOAT8,
               "real": t.FLOAT4, "bytea": t.BYTEA, "character varying": t.VARCHAR}


def oid_of_type(name: str) -> int:
    """An OID for ``format_type`` text (``numeric(12,2)`` → numeric)."""
    base = re.sub(r"\(.*?\)", "", name).strip()
    if base.endswith("[]"):
        inner = _TYPE_NAMES.get(base[:-2].strip())
        return t.ARRAY_OF.get(inner, t.TEXT) if inner else t.TEXT
    return _TYPE_NAMES.get(base, t.TEXT)


def pg_type_of(param_type: str) -> str:
    return t.type_name(t.param_oid(param_type))


def masks_of(plan_: Plan) -> str:
    return ", ".join(f"{name}: {how}" for name, how in sorted(plan_.fields.items()))
