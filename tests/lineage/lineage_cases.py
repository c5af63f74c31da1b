"""Reads the lineage cases in ``fixtures/*.sql``.

Each case is a comment header followed by its SQL::

    -- name: star_with_filter
    -- columns:
    --   id = customers.id [direct]
    --   note = customers.ssn, customers.email
    --   blob = * [untraced]
    -- filters: customers.id
    -- tables: customers
    -- parameters:
    --   :customer_id = customers.id
    -- equalities:
    --   :customer_id = customers.id
    -- problems: could not be traced
    SELECT ...;

or, for a query that must be refused, ``-- error: text the message contains``.
Sources of two parts are in schema ``public``; ``-`` is the empty set; ``*`` means every
column of every table the query reads. A key that is absent is not checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
_SECTIONS = ("columns", "parameters", "equalities")


@dataclass(frozen=True)
class ExpectedColumn:
    name: str
    sources: frozenset[str] | None  # None: every column the query reads
    direct: bool
    traced: bool


@dataclass
class Case:
    file: str
    name: str
    sql: str = ""
    error: str | None = None
    problems: str | None = None
    columns: list[ExpectedColumn] | None = None
    filters: frozenset[str] | None = None
    tables: frozenset[str] | None = None
    parameters: dict[str, frozenset[str]] | None = None
    equalities: dict[str, frozenset[str]] | None = None
    _lines: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.file}:{self.name}"


def load_cases() -> list[Case]:
    cases: list[Case] = []
    for path in sorted(FIXTURES.glob("*.sql")):
        cases.extend(_parse_file(path))
    return cases


def _parse_file(path: Path) -> list[Case]:
    cases: list[Case] = []
    section: str | None = None
    for raw in path.read_text().splitlines():
        line = raw.rstrip()
        if line.startswith("-- name:"):
            cases.append(Case(path.stem, line.removeprefix("-- name:").strip()))
            section = None
        elif not cases or not line:
            continue
        elif line.startswith("--   "):
            _add_entry(cases[-1], section, line.removeprefix("--").strip())
        elif line.startswith("--"):
            section = _set_key(cases[-1], line.removeprefix("--").strip())
        else:
            cases[-1]._lines.append(line)
    for case in cases:
        case.sql = "\n".join(case._lines)
    return cases


def _set_key(case: Case, text: str) -> str | None:
    key, _, value = text.partition(":")
    key, value = key.strip(), value.strip()
    if key in _SECTIONS:
        setattr(case, key, [] if key == "columns" else {})
        return key
    if key == "filters":
        case.filters = _sources(value)
    elif key == "tables":
        case.tables = frozenset(_qualify(t, 2) for t in _split(value))
    elif key == "error":
        case.error = value
    elif key == "problems":
        case.problems = value
    return None


def _add_entry(case: Case, section: str | None, text: str) -> None:
    left, _, right = text.partition(" = ")
    if section == "columns" and case.columns is not None:
        case.columns.append(_column(left.strip(), right))
    elif section == "parameters" and case.parameters is not None:
        case.parameters[left.strip()] = _sources(right)
    elif section == "equalities" and case.equalities is not None:
        case.equalities[left.strip()] = _sources(right)
    else:
        raise ValueError(f"{case.id}: entry outside a section: {text}")


def _column(name: str, text: str) -> ExpectedColumn:
    flags = {f.strip("[] ") for f in text.split("[")[1:]}
    listed = text.split("[")[0].strip()
    sources = None if listed == "*" else _sources(listed)
    return ExpectedColumn(name, sources, "direct" in flags, "untraced" not in flags)


def _sources(text: str) -> frozenset[str]:
    return frozenset(_qualify(s, 3) for s in _split(text))


def _split(text: str) -> list[str]:
    text = text.strip()
    return [] if text in ("", "-") else [part.strip() for part in text.split(",")]


def _qualify(name: str, parts: int) -> str:
    return name if name.count(".") >= parts - 1 else f"public.{name}"
