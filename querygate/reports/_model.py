"""A report as data: facts, an integrity statement, and tables; rendered as HTML, CSV or JSON."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

MASK_WORDS = {
    "allow": "in clear",
    "omit": "not returned",
    "deny": "refused",
    "mask.full": "hidden",
    "mask.last4": "last 4 characters only",
    "mask.email": "partly hidden",
    "mask.year": "year only",
    "mask.hash": "as a keyed hash",
    "mask.null": "emptied",
}


def describe_field(name: str, decision: str) -> str:
    """``iban (last 4 characters only)``: a field decision in words."""
    return f"{name} ({MASK_WORDS.get(decision, decision)})"


@dataclass(frozen=True)
class Integrity:
    """Whether the log this report is drawn from was verified, in words and in numbers."""

    ok: bool
    statement: str
    details: tuple[str, ...] = ()


@dataclass(frozen=True)
class Section:
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    note: str | None = None
    empty: str = "Nothing in this period."


@dataclass(frozen=True)
class Report:
    kind: str  # subject-access | offboarding | access-review | soc2
    title: str
    subtitle: str
    since: dt.datetime | None
    until: dt.datetime | None
    generated_at: dt.datetime
    generated_by: str
    integrity: Integrity
    summary: list[tuple[str, str]] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    not_available: list[str] = field(default_factory=list)  # what this report cannot show yet

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["summary"] = [{"label": k, "value": v} for k, v in self.summary]
        body["sections"] = [{**asdict(s), "rows": [dict(zip(s.columns, r, strict=True))
                                                    for r in s.rows]} for s in self.sections]
        return body


def period_words(since: dt.datetime | None, until: dt.datetime | None) -> str:
    start = f"{since:%Y-%m-%d %H:%M} UTC" if since else "the first event"
    end = f"{until:%Y-%m-%d %H:%M} UTC" if until else "now"
    return f"from {start} to {end}"
