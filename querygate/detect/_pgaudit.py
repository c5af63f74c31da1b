"""``import pgaudit``: a pgAudit log turned into audit events the detector can backtest.

pgAudit writes one ``AUDIT:`` line per statement (and object) to the server log,
under the database role, which is usually shared. Where it can, the import
recovers who and whom:

- the person, from ``--map KEY=PERSON``, KEY being the role, the client host or
  the application name found in the line prefix; else the role itself, so a
  shared role is one "person" (the blind spot querygate exists to close);
- the subjects, from equality and ``IN`` predicates on subject columns
  (literals, or ``$n`` parameters when ``pgaudit.log_parameter`` is on).

Lines that are not ``AUDIT:`` records are skipped; a record may span lines.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

_START = re.compile(r"^(?P<ts>\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?)"
                    r"(?: ?(?P<tz>Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?))?")
_AUDIT = re.compile(r"\b(?:LOG|NOTICE|INFO):\s+AUDIT: (?P<body>.*)$", re.S)
_PREFIX = {
    "user": re.compile(r"(?:user=|\s)(?P<v>[\w.$-]+)@[\w.$-]+|user=(?P<w>[\w.$-]+)"),
    "host": re.compile(r"(?:client|host|remote)=(?P<v>[\w.:-]+?)(?:\(\d+\))?[,\s]"),
    "app": re.compile(r"app(?:lication_name)?=(?P<v>[^,\]\s]+)"),
    "pid": re.compile(r"\[(?P<v>\d+)\]"),
}


@dataclass
class PgauditImport:
    """What an import found: events written, records skipped, roles left unmapped."""

    events: int = 0
    skipped: int = 0
    unmapped: set[str] = field(default_factory=set)


def _prefix(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, pattern in _PREFIX.items():
        match = pattern.search(text)
        if match:
            value = next((v for v in match.groups() if v), None)
            if value:
                found[name] = value
    return found


def _records(lines: Iterable[str]) -> Iterator[str]:
    """Whole log records: a line that starts with a timestamp, plus its continuation lines."""
    current: list[str] = []
    for line in lines:
        if _START.match(line) and current:
            yield "\n".join(current)
            current = []
        if _START.match(line) or current:
            current.append(line.rstrip("\n"))
    if current:
        yield "\n".join(current)


def _moment(ts: str, tz: str | None) -> str:
    moment = dt.datetime.fromisoformat(ts.replace(" ", "T"))
    if tz and tz[0] in "+-":
        offset = tz.replace(":", "")
        hours, minutes = int(offset[1:3]), int(offset[3:5] or 0)
        sign = 1 if tz[0] == "+" else -1
        moment = moment.replace(tzinfo=dt.timezone(sign * dt.timedelta(hours=hours,
                                                                        minutes=minutes)))
    else:  # UTC, GMT, Z or none: the log is read as UTC
        moment = moment.replace(tzinfo=dt.UTC)
    utc = moment.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _parameters(text: str) -> list[str]:
    if not text or text == "<not logged>" or text == "<none>":
        return []
    return next(csv.reader([text]), [])


class _Subjects:
    """Subject ids a statement selects by equality on a subject column."""

    def __init__(self, columns: Mapping[str, str]) -> None:
        self.columns = {k.lower(): v for k, v in columns.items()}  # schema.table.column -> type

    def find(self, statement: str, params: list[str]) -> list[dict[str, str]]:
        try:
            tree = sqlglot.parse_one(statement, dialect="postgres")
        except SqlglotError:
            return []
        if tree is None:
            return []
        tables = {(t.alias_or_name or "").lower(): _qualified(t) for t in tree.find_all(exp.Table)}
        found: dict[tuple[str, str], None] = {}
        for node in tree.find_all(exp.EQ, exp.In):
            column = node.this if isinstance(node.this, exp.Column) else node.expression
            if not isinstance(column, exp.Column):
                continue
            kind = self._kind(column, tables)
            if kind is None:
                continue
            values = node.expressions if isinstance(node, exp.In) else [
                node.expression if column is node.this else node.this]
            for value in values:
                ident = _value(value, params)
                if ident is not None:
                    found[(kind, ident)] = None
        return [{"type": t, "id": i} for t, i in found]

    def _kind(self, column: exp.Column, tables: Mapping[str, str]) -> str | None:
        name = column.name.lower()
        owner = column.table.lower()
        candidates = [tables[owner]] if owner in tables else list(dict.fromkeys(tables.values()))
        for table in candidates:
            kind = self.columns.get(f"{table}.{name}")
            if kind is not None:
                return kind
        return None


def _qualified(table: exp.Table) -> str:
    return f"{(table.db or 'public').lower()}.{table.name.lower()}"


def _value(node: exp.Expression, params: list[str]) -> str | None:
    if isinstance(node, exp.Literal):
        return str(node.this)
    if isinstance(node, exp.Cast):
        return _value(node.this, params)
    text = node.sql(dialect="postgres")
    if re.fullmatch(r"\$\d+", text):
        index = int(text[1:]) - 1
        return params[index] if 0 <= index < len(params) else None
    return None


def import_pgaudit(lines: Iterable[str], *, subjects: Mapping[str, str],
                   actors: Mapping[str, str], report: PgauditImport | None = None
                   ) -> Iterator[dict[str, Any]]:
    """Audit events (the JSONL export form) from pgAudit log lines, in log order."""
    report = report if report is not None else PgauditImport()
    finder = _Subjects(subjects)
    seen: set[tuple[str, str, str]] = set()
    for record in _records(lines):
        match = _AUDIT.search(record)
        start = _START.match(record)
        if match is None or start is None:
            report.skipped += 1
            continue
        try:
            fields = next(csv.reader([match.group("body")]))
        except (csv.Error, StopIteration):
            report.skipped += 1
            continue
        if len(fields) < 8:
            report.skipped += 1
            continue
        prefix = _prefix(record[:match.start()] + " ")
        key = (prefix.get("pid", ""), fields[1], fields[2])
        if key in seen:  # the same statement, logged again for another object
            continue
        seen = {key}
        yield _event(fields, prefix, _moment(start.group("ts"), start.group("tz")), finder,
                     actors, report)
        report.events += 1


def _event(fields: list[str], prefix: dict[str, str], when: str, finder: _Subjects,
           actors: Mapping[str, str], report: PgauditImport) -> dict[str, Any]:
    command, object_name, statement = fields[4], fields[6], fields[7]
    role = prefix.get("user", "unknown")
    actor = next((actors[k] for k in (prefix.get("app"), prefix.get("host"), role)
                  if k and k in actors), None)
    if actor is None:
        report.unmapped.add(role)
    params = _parameters(fields[8]) if len(fields) > 8 else []
    return {
        "occurred_at": when, "actor_id": actor or f"pg:{role}",
        "actor_roles": [f"pgaudit:{role}"],
        "function_name": f"{command} {object_name}".strip() or "statement",
        "decision": "allowed", "reason": None,
        "subjects": finder.find(statement, params) if command == "SELECT" else [],
        "client_addr": prefix.get("host"),
        "context": {"source": "pgaudit", "db_role": role},
    }
