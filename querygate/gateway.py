"""The gateway: request → identity → catalog → policy → execute → mask → audit → response.

``Gateway.call`` is the one path every caller takes (HTTP, CLI, tests). No row
leaves it before its audit event is committed; a call that cannot be audited
fails with 503 and returns nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, Protocol

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from querygate import audit, execute, identity
from querygate.adhoc import ADHOC_FUNCTION, prepare_adhoc
from querygate.analysis import AnalysedFunction, CatalogAnalysis, analyse_catalog
from querygate.audit._writer import GroupWriter
from querygate.errors import (
    BadParameters,
    ClientGone,
    NotFound,
    ProjectError,
    QuerygateError,
    Unavailable,
    UpstreamError,
)
from querygate.guards import CallContext, Guard, build_guards
from querygate.identity import Identity
from querygate.policy import Plan, plan
from querygate.project import Project

MAX_REASON_CHARS = 500
log = logging.getLogger("querygate.gateway")


class _Sink(Protocol):
    def write(self, rows: list[list[object]]) -> None: ...


class _Collected:
    """Masked rows kept in memory: an ordinary call."""

    def __init__(self) -> None:
        self.rows: list[list[object]] = []

    def write(self, rows: list[list[object]]) -> None:
        self.rows.extend(rows)


class Spool:
    """Masked rows written to a temporary file as JSON lines: an export, memory kept flat."""

    def __init__(self) -> None:
        self.file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the reader
        self.count = 0

    def write(self, rows: list[list[object]]) -> None:
        self.file.write(b"".join(orjson.dumps(r, default=str) + b"\n" for r in rows))
        self.count += len(rows)

    def rewound(self) -> IO[bytes]:
        self.file.seek(0)
        return self.file

    def close(self) -> None:
        self.file.close()


@dataclass(frozen=True)
class _Outcome:
    columns: list[str]
    truncated: bool
    receipt: audit.Receipt


@dataclass(frozen=True)
class Export:
    """A finished, audited export: read ``rows_file`` (JSON lines), then close it."""

    columns: list[str]
    fields: dict[str, str]
    rows: int
    truncated: bool
    receipt: audit.Receipt
    rows_file: IO[bytes]


@dataclass(frozen=True)
class CallResult:
    columns: list[str]
    rows: list[list[object]]
    fields: dict[str, str]
    truncated: bool
    receipt: audit.Receipt


def _refuse_broken(project: Project, analysis: CatalogAnalysis) -> None:
    """A function that cannot be analysed is never served."""
    failing = [n for n in project.catalog if n not in analysis.functions]
    if failing:
        name = failing[0]
        raise ProjectError(f"function {name!r} {analysis.problems[name][0]}; run `querygate check` "
                           "for the full report", path=project.catalog[name].path,
                           line=project.catalog[name].line)


def _derive(secret: bytes, purpose: str) -> bytes:
    return hmac.new(secret, purpose.encode(), hashlib.sha256).digest()


class Gateway:
    """One project served against one database, with its two pools."""

    def __init__(self, project: Project, analysis: CatalogAnalysis,
                 query_pool: AsyncConnectionPool[Any], audit_pool: AsyncConnectionPool[Any],
                 *, guards: list[Guard] | None = None,
                 authenticator: identity.Authenticator | None = None) -> None:
        self.project = project
        self.functions: Mapping[str, AnalysedFunction] = analysis.functions
        self.schema = analysis.schema
        self.classification = analysis.classification
        self.origins = analysis.origins
        self.query_pool = query_pool
        self.audit_pool = audit_pool
        self.guards = guards or []
        self.authenticator = authenticator or identity.TokenAuthenticator()
        self.writer = GroupWriter(audit_pool, timeout_s=project.settings.audit_timeout_ms / 1000)
        self._mask_key = _derive(project.secret_key, "mask.hash")
        self._param_key = _derive(project.secret_key, "audit.parameter")
        self._plans: dict[tuple[str, tuple[str, ...]], Plan] = {}

    @classmethod
    async def open(cls, project: Project) -> Gateway:
        """Open the pools and analyse every function; refuse to start on any problem."""
        settings = project.settings
        queries = execute.query_pool(project.database_url, settings)
        audits = execute.audit_pool(project.audit_url or project.database_url, settings)
        try:
            await queries.open(wait=True, timeout=settings.pool_timeout_s * 2)
            await audits.open(wait=True, timeout=settings.pool_timeout_s * 2)
            async with queries.connection() as conn:
                analysis = await analyse_catalog(conn, project.catalog, project.classification,
                                                 project.root)
            _refuse_broken(project, analysis)
        except BaseException:
            await queries.close()
            await audits.close()
            raise
        guards = build_guards(project)
        for guard in guards:
            await guard.open()
        gateway = cls(project, analysis, queries, audits, guards=guards,
                      authenticator=identity.build_authenticator(project))
        gateway.writer.start()
        return gateway

    async def close(self) -> None:
        await self.writer.stop()
        for guard in self.guards:
            await guard.close()
        await self.query_pool.close()
        await self.audit_pool.close()

    def plan_for(self, function: str, roles: tuple[str, ...]) -> Plan:
        """The cached plan for a role set; unknown roles grant nothing."""
        key = (function, roles)
        if key not in self._plans:
            analysed = self.functions[function]
            known = [self.project.roles[r] for r in roles if r in self.project.roles]
            self._plans[key] = plan(function, analysed.columns, dict(analysed.filters), known)
        return self._plans[key]

    def callable_by(self, who: Identity) -> list[AnalysedFunction]:
        return [f for f in self.functions.values() if self.plan_for(f.name, who.roles).allowed]

    async def authenticate(self, token: str | None) -> Identity:
        try:
            async with self.query_pool.connection() as conn:
                return await self.authenticator.authenticate(conn, token)
        except PoolTimeout:
            raise Unavailable("all database connections are busy; try again shortly") from None
        except psycopg.Error as exc:
            raise execute.upstream_error(exc) from None

    async def call(self, token: str | None, function: str, params: object,
                   reason: object = None, client_addr: str | None = None) -> CallResult:
        """Authenticate, decide, run, mask and audit one call of a named function."""
        context, event = await self._admitted(token, function, params, reason, client_addr)
        rows = _Collected()
        outcome = await self._run(event, context, self._fetch_all(context), rows)
        return CallResult(outcome.columns, rows.rows, context.plan.fields, outcome.truncated,
                          outcome.receipt)

    async def export(self, token: str | None, function: str, params: object,
                     reason: object = None, client_addr: str | None = None) -> Export:
        """A large result, streamed from PostgreSQL and masked into a spool file; the audit
        event (with every subject) commits before the caller reads the first byte."""
        context, event = await self._admitted(token, function, params, reason, client_addr)
        spool = Spool()
        try:
            chunks = execute.stream(self.query_pool, context.function.function.exec_sql,
                                    dict(context.values),
                                    max_rows=self.project.settings.max_export_rows,
                                    timeout_s=self.project.settings.pool_timeout_s,
                                    label=identity.query_label(context.identity))
            outcome = await self._run(event, context, chunks, spool)
        except BaseException:
            spool.close()
            raise
        return Export(outcome.columns, context.plan.fields, spool.count, outcome.truncated,
                      outcome.receipt, spool.rewound())

    async def sql(self, token: str | None, text: object, reason: object = None,
                  client_addr: str | None = None) -> CallResult:
        """Ad-hoc SQL for roles granted ``adhoc: true``: the same analysis, masks and audit."""
        who = await self.authenticate(token)
        event = _EventDraft(who, ADHOC_FUNCTION, client_addr)
        try:
            event.parameters = {"sql": text if isinstance(text, str) else None}
            why = _reason(reason)
            event.reason = why
            analysed, plan_ = prepare_adhoc(self, who, text)
        except QuerygateError as exc:
            await self._record_failure(event, exc)
            raise
        context = CallContext(who, analysed, plan_, {}, why, client_addr)
        rows = _Collected()
        outcome = await self._run(event, context, self._fetch_all(context, prepare=True), rows,
                                  adhoc=True)
        return CallResult(outcome.columns, rows.rows, plan_.fields, outcome.truncated,
                          outcome.receipt)

    async def _admitted(self, token: str | None, function: str, params: object, reason: object,
                        client_addr: str | None) -> tuple[CallContext, _EventDraft]:
        who = await self.authenticate(token)
        event = _EventDraft(who, function, client_addr)
        try:
            who, analysed, plan_, values, why = self._admit(who, function, params, reason)
            event.who, event.reason = who, why
            event.parameters = self._audit_params(analysed, values)
        except QuerygateError as exc:
            await self._record_failure(event, exc)
            raise
        return CallContext(who, analysed, plan_, values, why, client_addr), event

    async def _fetch_all(self, context: CallContext,
                         prepare: bool | None = None) -> AsyncIterator[execute.Result]:
        yield await execute.run(self.query_pool, context.function.function.exec_sql,
                                dict(context.values), max_rows=self.project.settings.max_rows,
                                timeout_s=self.project.settings.pool_timeout_s, prepare=prepare,
                                label=identity.query_label(context.identity))

    async def _run(self, event: _EventDraft, context: CallContext,
                   chunks: AsyncIterator[execute.Result], sink: _Sink,
                   *, adhoc: bool = False) -> _Outcome:
        """Guards, the query, the origin check, masks, and the audit event before release."""
        analysed, plan_ = context.function, context.plan
        found: dict[tuple[str, str], None] = {}
        columns: list[str] | None = None
        count, truncated = 0, False
        try:
            for guard in self.guards:
                await guard.before_run(context)
            async for result in chunks:
                if columns is None:
                    self._check_origins(analysed, result)
                    columns = result.columns
                _add_subjects(found, plan_, result.rows)
                sink.write(plan_.apply(result.rows, self._mask_key))
                count, truncated = count + len(result.rows), result.truncated
            subjects = _with_parameters(found, analysed, context.values, count)
            for guard in self.guards:
                await guard.before_release(context, subjects)
        except UpstreamError as exc:
            failure: QuerygateError = exc
            if adhoc and (exc.sqlstate or "")[:2] in ("42", "22"):  # the caller's own SQL
                failure = BadParameters(f"PostgreSQL refused the statement (SQLSTATE "
                                        f"{exc.sqlstate})", parameter="sql")
            await self._record_failure(event, failure)
            raise failure from None
        except QuerygateError as exc:
            await self._record_failure(event, exc)
            raise
        except asyncio.CancelledError:  # the caller went away: record it, then stop
            await asyncio.shield(self._record_failure(
                event, ClientGone("the client disconnected; the query was cancelled")))
            raise
        receipt = await self.writer.append(event.finish(
            "allowed", rows=count, fields=plan_.decisions, subjects=subjects))
        visible = [(columns or [])[i] for i in plan_.visible()] if columns else []
        return _Outcome(visible, truncated, receipt)

    def _check_origins(self, analysed: AnalysedFunction, result: execute.Result) -> None:
        """The second guard: PostgreSQL's own account of where each column comes from."""
        problem = self.origins.disagreement(analysed.columns, result)
        if problem is not None:
            log.error("function %s is inconsistent with its analysis: %s", analysed.name, problem)
            raise UpstreamError("the function's result does not match its analysed lineage, so "
                                "nothing was returned; run `querygate check`")

    def _admit(self, who: Identity, function: str, params: object, reason: object) -> tuple[
            Identity, AnalysedFunction, Plan, dict[str, object], str | None]:
        """Policy on everything the caller holds, then on the grants that cover this call."""
        analysed = self.functions.get(function)
        if analysed is None:
            raise NotFound(f"no function named {function[:80]!r}; GET /v1/functions lists yours")
        self.plan_for(function, who.roles).ensure_allowed()
        values = analysed.function.bind(params, max_chars=self.project.settings.max_param_chars)
        who = who.for_call(function, values)
        plan_ = self.plan_for(function, who.roles)
        plan_.ensure_allowed()
        return who, analysed, plan_, values, _reason(reason)

    def _audit_params(self, analysed: AnalysedFunction,
                      values: dict[str, object]) -> dict[str, object]:
        """Parameters as the log keeps them: values compared to tagged columns as HMACs."""
        kept: dict[str, object] = {}
        for name, value in values.items():
            plain = _plain(value)
            if name in analysed.sensitive_params:
                text = json.dumps(plain, sort_keys=True, ensure_ascii=False)
                digest = hmac.new(self._param_key, text.encode(), hashlib.sha256).hexdigest()
                plain = f"hmac:{digest[:32]}"
            kept[name] = plain
        return kept

    async def _record_failure(self, event: _EventDraft, exc: QuerygateError) -> None:
        decision = "denied" if exc.status in (403, 404) else "error"
        await self.writer.append(event.finish(decision, error_code=exc.code))


class _EventDraft:
    """The audit event of a call in progress."""

    def __init__(self, who: Identity, function: str, client_addr: str | None) -> None:
        self.who, self.function, self.client_addr = who, function, client_addr
        self.started = time.monotonic()
        self.occurred_at = dt.datetime.now(dt.UTC)
        self.reason: str | None = None
        self.parameters: dict[str, object] = {}

    def finish(self, decision: str, *, rows: int = 0, fields: Mapping[str, str] | None = None,
               subjects: tuple[tuple[str, str], ...] = (),
               error_code: str | None = None) -> audit.AuditEvent:
        return audit.AuditEvent(
            occurred_at=self.occurred_at, function_name=_printable(self.function), decision=decision,
            actor_id=self.who.user_id, actor_email=self.who.email, actor_roles=self.who.roles,
            parameters=self.parameters, reason=self.reason, error_code=error_code,
            rows_returned=rows, fields=dict(fields or {}), subjects=subjects,
            client_addr=self.client_addr,
            duration_us=int((time.monotonic() - self.started) * 1_000_000),
            context=dict(self.who.context),
        )


def _printable(text: str, limit: int = 200) -> str:
    """A caller-chosen name as the log keeps it: bounded, control characters escaped."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text[:limit])


def _reason(reason: object) -> str | None:
    if reason is None or reason == "":
        return None
    if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS or "\x00" in reason:
        raise BadParameters(f"reason must be text of at most {MAX_REASON_CHARS} characters",
                            parameter="reason")
    return reason


def _plain(value: object) -> object:
    """A bound value as JSON the audit log can hash: no floats, no dates, no decimals."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def _add_subjects(found: dict[tuple[str, str], None], plan_: Plan,
                  rows: list[tuple[Any, ...]]) -> None:
    """Subject ids from the columns that carry them, in order of first appearance."""
    indexes = [(i, c.spec.subject) for i, c in enumerate(plan_.columns) if c.spec.subject]
    for row in rows:
        for i, subject in indexes:
            if row[i] is not None:
                found[(str(subject), str(row[i]))] = None


def _with_parameters(found: dict[tuple[str, str], None], analysed: AnalysedFunction,
                     values: Mapping[str, object], count: int) -> tuple[tuple[str, str], ...]:
    """Add the subjects a call selected by equality on a subject key, when it returned rows."""
    if count:
        for param, subject in analysed.subject_params.items():
            if values.get(param) is not None:
                found[(subject, str(values[param]))] = None
    return tuple(found)
