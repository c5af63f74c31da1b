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

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from querygate.adhoc import ADHOC_FUNCTION
from querygate.detect import Alert
from querygate.detect._pgaudit import AuditRecord
from querygate.exposure._quiet import quiet_sqlglot

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

    def shape(self, statement: str) -> Shape:
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


def reconcile(records: Iterable[AuditRecord], *, classified: Iterable[str], gateway_role: str,
              functions: Functions, events: Sequence[GatewayEvent],
              tolerance: dt.timedelta = dt.timedelta(seconds=1)) -> Reconciliation:
    """Every classified statement in ``records`` accounted for, or a finding."""
    result = Reconciliation(events=len(events))
    used: set[int] = set()
    ordered = sorted(range(len(events)), key=lambda i: events[i].occurred_at + events[i].duration)
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
            if any(_within(e, stmt, tolerance) for e in events):
                result.purpose += 1
                continue
            why = "a purpose check's SQL outside the time of any audited call"
        else:
            hit = next((i for i in ordered if i not in used and _covers(events[i], stmt, shape,
                                                                        tolerance)), None)
            if hit is not None:
                used.add(hit)
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


def _within(event: GatewayEvent, stmt: Statement, tolerance: dt.timedelta) -> bool:
    at = stmt.first.at
    return event.occurred_at - tolerance <= at <= event.occurred_at + event.duration + tolerance


def _covers(event: GatewayEvent, stmt: Statement, shape: Shape, tolerance: dt.timedelta) -> bool:
    """The event is of this statement's function (or ad-hoc SQL of the same text), of the
    actor its label names (when it has one), and its time covers the statement."""
    if event.function_name == ADHOC:
        same_text = event.sql is not None and fingerprint(event.sql) == shape.text
        if not (same_text or _masked(stmt)):
            return False
    elif event.function_name not in shape.functions:
        return False
    if shape.actor is not None and event.actor_id != shape.actor:
        return False
    return _within(event, stmt, tolerance)
