"""``audit reconcile``: PostgreSQL's own log (pgAudit) against the gateway's audit events.

Every READ or WRITE statement on a classified table is either

- the gateway's: run by the gateway's role, with the text of a catalog function (literals and
  parameters aside) or of an ad-hoc call's SQL (or that SQL rewritten to read the gateway's
  masked views), inside the time window of an audit event of that function (``occurred_at``
  to ``occurred_at`` plus its duration, widened by a tolerance for clock skew) and of the
  actor its ``/* querygate:ACTOR */`` label names, when it has one; each event vouches for
  one statement;
- the gateway's own startup check (``SELECT * FROM (<function>) AS querygate_describe
  LIMIT 0``, which reads no row), or one of the project's purpose checks inside the time of
  an audited call, or
- a finding: ``bypass.role`` (another role went around the gateway) or ``bypass.unaudited``
  (the gateway's role, with no audit event to account for it).
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from querygate.detect import Alert, AuditRecord
from querygate.exposure._quiet import quiet_sqlglot
from querygate.gateway import ADHOC_FUNCTION

ADHOC = ADHOC_FUNCTION
MASKED_SCHEMA = "querygate_masked"  # where the gateway keeps the masked views ad-hoc SQL reads
DATA_CLASSES = ("READ", "WRITE")
RELATIONS = ("TABLE", "VIEW", "MATERIALIZED VIEW", "FOREIGN TABLE", "PARTITIONED TABLE")

_LABEL = re.compile(r"^\s*/\*\s*querygate:(?P<actor>[A-Za-z0-9_:.-]+)(?:/[A-Za-z0-9_:/.-]*)?\s*\*/\s*")
_CURSOR = re.compile(r'^\s*DECLARE\s+(?:"[^"]*"|\w+)\s+(?:BINARY\s+)?(?:(?:NO\s+)?SCROLL\s+)?'
                     r"CURSOR\s+(?:WITH(?:OUT)?\s+HOLD\s+)?FOR\s+", re.I)
_DESCRIBE = re.compile(r"^SELECT \* FROM \((?P<inner>.*)\) AS querygate_(?:describe|purpose) "
                       r"LIMIT 0$", re.S | re.I)
_PLACEHOLDER = re.compile(r"%%|%\((?P<name>[^)]+)\)s")


def normal(sql: str) -> str:
    """SQL text compared for equality: whitespace runs collapsed, no trailing semicolon."""
    return " ".join(sql.split()).rstrip(";").rstrip()


def as_sent(exec_sql: str) -> str:
    """A function's psycopg SQL (``%(name)s``) as PostgreSQL receives it (``$1``)."""
    numbers: dict[str, int] = {}

    def swap(match: re.Match[str]) -> str:
        name = match.group("name")
        if name is None:
            return "%"
        return f"${numbers.setdefault(name, len(numbers) + 1)}"

    return normal(_PLACEHOLDER.sub(swap, exec_sql))


@functools.lru_cache(maxsize=4096)
def fingerprint(sql: str) -> str:
    """A statement's text with every literal and parameter (``$1``, ``:name``, ``'x'``, ``42``)
    as one placeholder, so a function's SQL matches the way any driver or log spells it."""
    try:
        with quiet_sqlglot():
            tree = sqlglot.parse_one(sql, dialect="postgres")
    except SqlglotError:
        return normal(sql)
    if tree is None:
        return normal(sql)
    values = (exp.Literal, exp.Placeholder, exp.Parameter)
    blank = tree.transform(lambda n: exp.Placeholder() if isinstance(n, values) else n)
    return normal(blank.sql(dialect="postgres"))


@dataclass(frozen=True)
class GatewayEvent:
    """What reconciliation needs of an audit event (``sql``: the text of ad-hoc SQL)."""

    ref: str  # seq or event id
    occurred_at: dt.datetime
    duration: dt.timedelta
    function_name: str
    actor_id: str | None
    sql: str | None = None


@dataclass
class Statement:
    """One statement (all its pgAudit records: objects, substatements, object audit)."""

    first: AuditRecord
    tables: set[str] = field(default_factory=set)
    objects: set[str] = field(default_factory=set)  # every relation it read, classified or not
    classes: set[str] = field(default_factory=set)
    parsed: bool = False  # tables read from the text: the log had no object names

    @property
    def role(self) -> str:
        return self.first.role


@dataclass(frozen=True)
class Finding:
    rule: str
    statement: Statement
    why: str

    def to_json(self) -> dict[str, Any]:
        rec = self.statement.first
        return {"rule": self.rule, "severity": "high", "at": _iso(rec.at), "role": rec.role,
                "database": rec.database, "session": rec.session, "client": rec.client,
                "application": rec.application, "statement_id": rec.statement_id,
                "command": rec.command, "tables": sorted(self.statement.tables),
                "statement": rec.statement, "why": self.why}

    def alert(self) -> Alert:
        rec = self.statement.first
        tables = sorted(self.statement.tables)
        who = f"role {rec.role}" if self.rule == "bypass.role" else \
            f"the gateway's role {rec.role} with no audit event"
        return Alert(
            actor_id=f"pg:{rec.role}", rule=self.rule, severity="high", raised_at=_iso(rec.at),
            summary=f"{rec.command} on {', '.join(tables)} by {who}, outside the gateway",
            key=f"{self.rule}:{rec.database}:{rec.session}:{rec.statement_id}:{_iso(rec.at)}",
            features={"role": rec.role, "database": rec.database, "command": rec.command,
                      "tables": tables, "client": rec.client, "application": rec.application,
                      "session": rec.session, "statement_id": rec.statement_id})


@dataclass
class Reconciliation:
    records: int = 0
    statements: int = 0  # READ/WRITE statements on classified tables
    matched: int = 0
    checks: int = 0  # the gateway's describe statements at startup
    purpose: int = 0  # purpose checks inside an audited call's time
    parsed: int = 0  # statements whose tables came from their text (no object names logged)
    findings: list[Finding] = field(default_factory=list)
    events: int = 0  # audit events looked at

    def to_json(self) -> dict[str, Any]:
        return {"records": self.records, "statements": self.statements,
                "matched": self.matched, "startup_checks": self.checks,
                "purpose_checks": self.purpose,
                "tables_from_text": self.parsed, "events": self.events,
                "findings": [f.to_json() for f in self.findings]}


def _iso(moment: dt.datetime) -> str:
    utc = moment.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def statements(records: Iterable[AuditRecord], classified: Iterable[str],
               result: Reconciliation) -> list[Statement]:
    """READ and WRITE statements on classified tables, each with all its records merged, in
    time order. Records stream through: only one open statement per session is held."""
    tables = {t.lower() for t in classified}
    # an unqualified name is public's table when public has one (listed last, so it wins)
    by_name = {t.split(".", 1)[1]: t for t in sorted(tables, key=lambda t: t.startswith(
        "public."))}
    current: dict[tuple[str, str], Statement] = {}
    kept: list[Statement] = []
    for rec in records:
        result.records += 1
        key = (rec.database, rec.session)
        stmt = current.get(key)
        if stmt is None or stmt.first.statement_id != rec.statement_id:
            if stmt is not None and _classified(stmt, tables, by_name):
                kept.append(stmt)
            stmt = current[key] = Statement(rec)
        stmt.classes.add(rec.audit_class)
        if rec.object_type in RELATIONS and rec.object_name:
            stmt.tables.add(rec.object_name.lower())
            stmt.objects.add(rec.object_name.lower())
    kept += [s for s in current.values() if _classified(s, tables, by_name)]
    return sorted(kept, key=lambda s: s.first.at)


def _classified(stmt: Statement, tables: set[str], by_name: Mapping[str, str]) -> bool:
    """A READ or WRITE statement on a classified table (its tables narrowed to those)."""
    if not stmt.classes & set(DATA_CLASSES):
        return False
    if not stmt.tables:
        stmt.tables = _from_text(stmt.first.statement, by_name)
        stmt.parsed = bool(stmt.tables)
    stmt.tables &= tables
    return bool(stmt.tables)


def _from_text(sql: str, by_name: Mapping[str, str]) -> set[str]:
    """Tables named in a statement's text, for logs without pgaudit.log_relation."""
    try:
        with quiet_sqlglot():
            trees = sqlglot.parse(sql, dialect="postgres")
    except SqlglotError:
        return set()
    found: set[str] = set()
    for tree in trees:
        for table in tree.find_all(exp.Table) if tree is not None else ():
            name = table.name.lower()
            found.add(f"{table.db.lower()}.{name}" if table.db else by_name.get(name, name))
    return found


@dataclass(frozen=True)
class Shape:
    """What a statement of the gateway's role is: ``call`` (a function's or ad-hoc SQL, with
    the actor of its label), ``startup`` (a describe that reads no row) or ``check`` (a
    purpose check the gateway runs, unlabelled, while it decides a call)."""

    kind: str
    actor: str | None = None
    functions: frozenset[str] = frozenset()
    text: str = ""  # the statement's fingerprint, compared with ad-hoc events' SQL


class Functions:
    """The gateway's own SQL as PostgreSQL sees its text: catalog functions and purpose checks."""

    def __init__(self, exec_sql: Mapping[str, str], checks: Mapping[str, str] | None = None
                 ) -> None:
        self.by_text: dict[str, set[str]] = {}
        for name, sql in exec_sql.items():
            self.by_text.setdefault(fingerprint(as_sent(sql)), set()).add(name)
        self.checks = {fingerprint(as_sent(sql)) for sql in (checks or {}).values()}
        self._shapes: dict[str, Shape] = {}

    def shape(self, statement: str) -> Shape:
        known = self._shapes.get(statement)
        if known is None:
            if len(self._shapes) > 10_000:  # the gateway's texts repeat; others need no memory
                self._shapes.clear()
            known = self._shapes[statement] = self._shape(statement)
        return known

    def _shape(self, statement: str) -> Shape:
        text = _CURSOR.sub("", statement, count=1)
        label = _LABEL.match(text)
        body = normal(text[label.end():] if label else text)
        describe = _DESCRIBE.match(body)
        if label is None and describe:
            inner = fingerprint(describe.group("inner"))
            if inner in self.by_text or inner in self.checks:
                return Shape("startup")
        printed = fingerprint(body)
        if label is None and printed in self.checks:
            return Shape("check")
        return Shape("call", label.group("actor") if label else None,
                     frozenset(self.by_text.get(printed, ())), printed)


class _Events:
    """The audit events by function, in start order, so a statement finds the few whose time
    can cover it by bisection; each event vouches for one statement."""

    def __init__(self, events: Sequence[GatewayEvent], tolerance: dt.timedelta) -> None:
        self.tolerance = tolerance
        self.used: set[int] = set()
        self.by_function: dict[str, list[tuple[dt.datetime, int, GatewayEvent]]] = {}
        for i, event in enumerate(events):
            self.by_function.setdefault(event.function_name, []).append(
                (event.occurred_at, i, event))
        for rows in self.by_function.values():
            rows.sort(key=lambda r: (r[0], r[1]))
        self.longest = {name: max((r[2].duration for r in rows), default=dt.timedelta())
                        for name, rows in self.by_function.items()}
        self.every = sorted(((e.occurred_at, i, e) for i, e in enumerate(events)),
                            key=lambda r: (r[0], r[1]))
        self.longest_any = max((e.duration for e in events), default=dt.timedelta())

    def _around(self, rows: list[tuple[dt.datetime, int, GatewayEvent]], longest: dt.timedelta,
                at: dt.datetime) -> Iterator[tuple[int, GatewayEvent]]:
        """The events whose window, widened by the tolerance, contains ``at``."""
        top = bisect.bisect_right(rows, at + self.tolerance, key=lambda r: r[0])
        bottom = bisect.bisect_left(rows, at - self.tolerance - longest, key=lambda r: r[0])
        for _, i, event in rows[bottom:top]:
            if event.occurred_at + event.duration + self.tolerance >= at:
                yield i, event

    def any_covers(self, at: dt.datetime) -> bool:
        return next(self._around(self.every, self.longest_any, at), None) is not None

    def take(self, stmt: Statement, shape: Shape) -> bool:
        """Mark the event that accounts for ``stmt`` (the one that ends first); False if none."""
        best: tuple[dt.datetime, int] | None = None
        for name in shape.functions or {ADHOC}:
            rows = self.by_function.get(name, [])
            for i, event in self._around(rows, self.longest.get(name, dt.timedelta()),
                                         stmt.first.at):
                end = event.occurred_at + event.duration
                if i not in self.used and _covers(event, stmt, shape) and (
                        best is None or (end, i) < best):
                    best = (end, i)
        if best is None:
            return False
        self.used.add(best[1])
        return True


def reconcile(records: Iterable[AuditRecord], *, classified: Iterable[str], gateway_role: str,
              functions: Functions, events: Sequence[GatewayEvent],
              tolerance: dt.timedelta = dt.timedelta(seconds=1)) -> Reconciliation:
    """Every classified statement in ``records`` accounted for, or a finding."""
    result = Reconciliation(events=len(events))
    index = _Events(events, tolerance)
    for stmt in statements(records, classified, result):
        result.statements += 1
        result.parsed += stmt.parsed
        if stmt.role != gateway_role:
            result.findings.append(Finding("bypass.role", stmt, f"role {stmt.role} is not the "
                                           f"gateway's ({gateway_role})"))
            continue
        shape = functions.shape(stmt.first.statement)
        if shape.kind == "startup":
            result.checks += 1
            continue
        if shape.kind == "check":  # a purpose check inside some call's window
            if index.any_covers(stmt.first.at):
                result.purpose += 1
                continue
            why = "a purpose check's SQL outside the time of any audited call"
        else:
            if index.take(stmt, shape):
                result.matched += 1
                continue
            what = ", ".join(sorted(shape.functions)) or "no catalog function, no ad-hoc call"
            why = (f"the gateway's role ran it ({what}; label {shape.actor or 'none'}) and no "
                   "audit event of that function and actor covers its time")
        result.findings.append(Finding("bypass.unaudited", stmt, why))
    return result


def _masked(stmt: Statement) -> bool:
    """Ad-hoc SQL the gateway rewrote to read the masked views it keeps (so its text is not the
    caller's): it reads relations of that schema."""
    return any(o.startswith(f"{MASKED_SCHEMA}.") for o in stmt.objects) or \
        f"{MASKED_SCHEMA}." in stmt.first.statement.lower()


def _covers(event: GatewayEvent, stmt: Statement, shape: Shape) -> bool:
    """The event (whose time covers the statement) is of this statement's function, or is
    ad-hoc SQL of the same text or read through the masked views, and of the actor its label
    names when it has one."""
    if event.function_name == ADHOC:
        same_text = event.sql is not None and fingerprint(event.sql) == shape.text
        if not (same_text or _masked(stmt)):
            return False
    elif event.function_name not in shape.functions:
        return False
    return shape.actor is None or event.actor_id == shape.actor
