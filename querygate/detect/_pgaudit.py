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

``audit_records`` reads whole pgAudit records with their log context (role, database,
session, client, application) from any of PostgreSQL's log formats (stderr with a documented
``log_line_prefix``, csvlog, jsonlog) for ``audit reconcile``; ``last_seen`` finds each role's
latest connection in such a log for ``exposure --log``.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from querygate.errors import LogFormatError

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


# -- whole records in any of PostgreSQL's log formats (``audit reconcile``) ----------------------



@dataclass(frozen=True)
class AuditRecord:
    """One pgAudit record with the server log's context: when, which role, which session."""

    at: dt.datetime
    role: str
    database: str
    session: str  # the session id (csvlog, jsonlog) or the process id (stderr)
    client: str | None
    application: str | None
    audit_type: str  # SESSION or OBJECT
    statement_id: int
    substatement_id: int
    audit_class: str  # READ, WRITE, FUNCTION, ...
    command: str
    object_type: str
    object_name: str
    statement: str
    parameters: tuple[str, ...]


STDERR_PREFIX = "%m [%p] %u@%d app=%a client=%h "
"""The ``log_line_prefix`` this reader documents for the stderr format."""
_CSV_START = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)? [\w+:-]+,")
_ROLE_AT = re.compile(r"(?:^|\s)(?P<user>[\w.$-]*)@(?P<db>[\w.$-]*)(?:\s|$)")
_USER_IS = re.compile(r"\b(?:user|usr|u)=(?P<v>[\w.$-]+)")
_DB_IS = re.compile(r"\b(?:db|database|d)=(?P<v>[\w.$-]+)")


def _who(prefix: str) -> tuple[str, str]:
    """The role and database in a line prefix: ``%u@%d`` or ``user=%u ... db=%d``."""
    at = _ROLE_AT.search(prefix)
    if at is not None and at.group("user"):
        return at.group("user"), at.group("db")
    user, db = _USER_IS.search(prefix), _DB_IS.search(prefix)
    return (user.group("v") if user else ""), (db.group("v") if db else "")


def log_format(first_line: str) -> str:
    """``stderr``, ``csvlog`` or ``jsonlog`` from a log's first line."""
    line = first_line.lstrip("\ufeff")
    if line.startswith("{"):
        return "jsonlog"
    if _CSV_START.match(line):
        return "csvlog"
    if _START.match(line):
        return "stderr"
    raise LogFormatError(
        "unknown log format: the first line is neither csvlog, jsonlog nor stderr output whose "
        f"log_line_prefix starts with a timestamp (set log_line_prefix = '{STDERR_PREFIX}')")


@dataclass(frozen=True)
class LogMessage:
    """One record of a server log, any format: when, who, which session, and its message."""

    at: dt.datetime
    role: str
    database: str
    session: str
    client: str | None
    application: str | None
    message: str


def log_messages(lines: Iterable[str], zone: dt.tzinfo | None = None) -> Iterator[LogMessage]:
    """Every record of a server log, whatever its format (stderr with the documented prefix,
    csvlog or jsonlog), in log order; ``zone`` is the server's log_timezone when its times
    carry an abbreviation rather than UTC or an offset."""
    source = iter(lines)
    first = next((line for line in source if line.strip()), None)
    if first is None:
        return
    fmt = log_format(first)
    rest = _chain(first, source)
    if fmt == "csvlog":
        yield from _csv_messages(rest, zone)
    elif fmt == "jsonlog":
        yield from _json_messages(rest, zone)
    else:
        yield from _stderr_messages(rest, zone)


def audit_records(lines: Iterable[str], zone: dt.tzinfo | None = None
                  ) -> Iterator[AuditRecord]:
    """pgAudit records in a server log, in log order; other records are passed over."""
    for msg in log_messages(lines, zone):
        fields = _audit_fields(msg.message)
        if fields is None:
            continue
        if not msg.role:
            raise LogFormatError(
                "a pgAudit record's line prefix names no role: set log_line_prefix = "
                f"'{STDERR_PREFIX}' (it needs %u@%d and %p)")
        yield _record(msg, fields)


_AUTHORIZED = re.compile(r"^connection authorized: user=(?P<user>\S+)")


def last_seen(lines: Iterable[str], zone: dt.tzinfo | None = None) -> dict[str, LogMessage]:
    """Per role, its latest connection (``log_connections``) or pgAudit record in the log."""
    seen: dict[str, LogMessage] = {}
    for msg in log_messages(lines, zone):
        authorized = _AUTHORIZED.match(msg.message)
        role = authorized.group("user") if authorized else (
            msg.role if msg.message.startswith("AUDIT: ") else None)
        if role and (role not in seen or seen[role].at <= msg.at):
            seen[role] = msg
    return seen


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _audit_fields(message: str) -> list[str] | None:
    if not message.startswith("AUDIT: "):
        return None
    try:
        fields = next(csv.reader([message[7:]]))
    except (csv.Error, StopIteration):
        return None
    return fields if len(fields) >= 8 else None


def _record(msg: LogMessage, fields: list[str]) -> AuditRecord:
    def number(text: str) -> int:
        return int(text) if text.isdigit() else 0

    return AuditRecord(msg.at, msg.role, msg.database, msg.session, msg.client,
                       msg.application, fields[0], number(fields[1]), number(fields[2]),
                       fields[3], fields[4], fields[5], fields[6], fields[7],
                       tuple(_parameters(fields[8])) if len(fields) > 8 else ())


_ZONE_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)? (?P<abbr>[A-Z]{2,5})[ ,]")


def _when(text: str, zone: dt.tzinfo | None) -> dt.datetime:
    """A record's time in UTC. ``%m``/``%t`` print the server's ``log_timezone`` by its
    abbreviation (CET, EST, ...), which names no zone for sure: ``zone`` says which it is."""
    start = _START.match(text)
    if start is None:
        raise LogFormatError(f"a record's time {text[:40]!r} is not a timestamp")
    named = _ZONE_NAME.match(text) if start.group("tz") is None else None
    if named is not None:
        if zone is None:
            raise LogFormatError(
                f"the log's times are in {named.group('abbr')!r}, a zone abbreviation; pass "
                "--log-timezone with the server's log_timezone (e.g. Europe/Berlin), or set "
                "log_timezone = 'UTC'")
        local = dt.datetime.fromisoformat(start.group("ts").replace(" ", "T"))
        return local.replace(tzinfo=zone).astimezone(dt.UTC)
    return dt.datetime.fromisoformat(_moment(start.group("ts"), start.group("tz"))
                                     .replace("Z", "+00:00"))


_MESSAGE = re.compile(r"\b(?:LOG|NOTICE|INFO|WARNING|ERROR|FATAL|PANIC|DEBUG\d?):\s+"
                      r"(?P<body>.*)$", re.S)


def _stderr_messages(lines: Iterable[str], zone: dt.tzinfo | None) -> Iterator[LogMessage]:
    for text in _records(lines):
        match = _MESSAGE.search(text)
        if match is None:
            continue
        head = text[:match.start()] + " "
        stamp = _START.match(head)
        found = {k: v for k, v in _prefix(head).items() if not v.startswith("[")}  # [unknown]
        role, database = _who(head[stamp.end():] if stamp else head)
        yield LogMessage(_when(text, zone), role, database, found.get("pid", ""),
                         found.get("host"), found.get("app"), match.group("body"))


def _csv_messages(lines: Iterable[str], zone: dt.tzinfo | None) -> Iterator[LogMessage]:
    try:
        for row in csv.reader(lines):
            if len(row) < 23:
                continue
            client = row[4].rsplit(":", 1)[0] if row[4] else None
            yield LogMessage(_when(row[0], zone), row[1], row[2], row[5] or row[3], client,
                             row[22] or None, row[13])
    except csv.Error as exc:
        raise LogFormatError(f"not a csvlog file: {exc}") from None


def _json_messages(lines: Iterable[str], zone: dt.tzinfo | None) -> Iterator[LogMessage]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            raise LogFormatError(f"line {number} is not JSON, so this is not a jsonlog file"
                                 ) from None
        if not isinstance(item, dict):
            raise LogFormatError(f"line {number} is not a JSON object, so this is not a "
                                 "jsonlog file")
        yield LogMessage(_when(str(item.get("timestamp", "")), zone), str(item.get("user", "")),
                         str(item.get("dbname", "")),
                         str(item.get("session_id") or item.get("pid") or ""),
                         item.get("remote_host"), item.get("application_name"),
                         str(item.get("message", "")))
