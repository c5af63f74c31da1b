"""What the gateway answers: a call's result, a function's description, an export's header."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Receipt:
    """The audit event's place in the hash chain."""

    seq: int
    hash: str


@dataclass(frozen=True)
class Result:
    """One call's rows, already masked for the caller. ``fields`` names each column that is not
    in clear and the rule applied (``{"iban": "mask.last4", "ssn": "omit"}``)."""

    columns: list[str]
    rows: list[list[Any]]
    fields: dict[str, str]
    truncated: bool
    audit_id: str
    receipt: Receipt | None = None

    def records(self) -> list[dict[str, Any]]:
        """The rows as dicts keyed by column name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    schema: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Function:
    """A function the caller may call, and what it masks for them."""

    name: str
    description: str
    parameters: list[Parameter]
    fields: dict[str, str]


def receipt_from(body: dict[str, Any]) -> Receipt | None:
    raw = body.get("receipt")
    if not isinstance(raw, dict):
        return None
    return Receipt(int(raw["seq"]), str(raw["hash"]))


def result_from(body: dict[str, Any]) -> Result:
    return Result(columns=list(body["columns"]), rows=[list(r) for r in body["rows"]],
                  fields=dict(body.get("fields") or {}), truncated=bool(body.get("truncated")),
                  audit_id=str(body["audit_id"]), receipt=receipt_from(body))


def functions_from(body: dict[str, Any]) -> list[Function]:
    return [Function(name=f["name"], description=f.get("description") or "",
                     parameters=[Parameter(p["name"], p["type"], dict(p.get("schema") or {}))
                                 for p in f.get("parameters", [])],
                     fields=dict(f.get("fields") or {}))
            for f in body.get("functions", [])]
