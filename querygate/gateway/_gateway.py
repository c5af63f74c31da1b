"""The gateway: request → identity → catalog → policy → execute → mask → audit → response.

``Gateway.call`` is the one path every caller takes (HTTP, CLI, tests). No row
leaves it before its audit event is committed; a call that cannot be audited
fails with 503 and returns nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from querygate import adhoc, audit, execute, identity, metrics, reports
from querygate.audit import GroupWriter
from querygate.errors import (
    BadParameters,
    ClientGone,
    NotAuthenticated,
    NotFound,
    ProjectError,
    QuerygateError,
    UpstreamError,
)
from querygate.gateway._adhoc import (
    ADHOC_FUNCTION,
    AdhocSetting,
    adhoc_setting,
    derive_key,
    prepare_adhoc,
)
from querygate.gateway._analysis import AnalysedFunction, CatalogAnalysis, analyse_catalog
from querygate.gateway._guards import build_guards
from querygate.gateway._ready import Readiness, check_readiness
from querygate.gateway._record import (
    EventDraft,
    RefusalBudget,
    add_subjects,
    audit_parameters,
    checked_reason,
    printable,
    with_parameters,
)
from querygate.gateway._results import CallResult, Collected, Export, Outcome, Sink, Spool
from querygate.guards import CallContext, Guard
from querygate.identity import Identity
from querygate.policy import Plan, plan
from querygate.project import Project

log = logging.getLogger("querygate.gateway")


def _refuse_broken(project: Project, analysis: CatalogAnalysis) -> None:
    """A function that cannot be analysed is never served."""
    failing = [n for n in project.catalog if n not in analysis.functions]
    if failing:
        name = failing[0]
        raise ProjectError(f"function {name!r} {analysis.problems[name][0]}; run `querygate check` "
                           "for the full report", path=project.catalog[name].path,
                           line=project.catalog[name].line)


class Gateway:
    """One project served against one database, with its two pools."""

    def __init__(self, project: Project, analysis: CatalogAnalysis,
                 query_pool: AsyncConnectionPool[Any], audit_pool: AsyncConnectionPool[Any],
                 *, guards: list[Guard] | None = None,
                 authenticator: identity.Authenticator | None = None,
                 policy_version: str | None = None,
                 checks_pool: AsyncConnectionPool[Any] | None = None,
                 adhoc_setting: AdhocSetting | None = None) -> None:
        self.project = project
        self.functions: Mapping[str, AnalysedFunction] = analysis.functions
        self.schema = analysis.schema
        self.classification = analysis.classification
        self.origins = analysis.origins
        self.adhoc = adhoc_setting or AdhocSetting(
            analysis.schema, analysis.classification, adhoc.allowlist(()), None,
            "ad-hoc SQL was not prepared when this gateway opened")
        self.query_pool = query_pool
        self.audit_pool = audit_pool
        self.guards = guards or []
        self.authenticator = authenticator or identity.TokenAuthenticator()
        self.policy_version = policy_version  # recorded in querygate.policy_versions at start
        self.writer = GroupWriter(audit_pool, timeout_s=project.settings.audit_timeout_ms / 1000)
        # the token checks' own connection: a batch never queues behind the calls' queries
        self.checks_pool = checks_pool
        self.token_checks = identity.TokenChecks(checks_pool or query_pool,
                                                 timeout_s=project.settings.pool_timeout_s)
        self._mask_key = derive_key(project.secret_key, "mask.hash")
        self._param_key = derive_key(project.secret_key, "audit.parameter")
        self._plans: dict[tuple[str, tuple[str, ...]], Plan] = {}
        self._calls = 0  # calls of named functions under way (token_checks: is one alone?)
        self._refusals = RefusalBudget()  # unknown tokens audited, a flood bounded

    @classmethod
    async def open(cls, project: Project) -> Gateway:
        """Open the pools and analyse every function; refuse to start on any problem."""
        settings = project.settings
        queries = execute.query_pool(project.database_url, settings)
        checks = execute.query_pool(project.database_url, settings, size=1,
                                    name="querygate-token-checks")
        audits = execute.audit_pool(project.audit_url or project.database_url, settings)
        try:
            await queries.open(wait=True, timeout=settings.pool_timeout_s * 2)
            await checks.open(wait=True, timeout=settings.pool_timeout_s * 2)
            await audits.open(wait=True, timeout=settings.pool_timeout_s * 2)
            async with queries.connection() as conn:
                analysis = await analyse_catalog(conn, project.catalog, project.classification,
                                                 project.root)
            _refuse_broken(project, analysis)
            async with queries.connection() as conn:
                prepared = await adhoc_setting(conn, project, analysis)
            async with audits.connection() as conn:
                version = await audit.record_policy_version(conn, project)
        except BaseException:
            await queries.close()
            await checks.close()
            await audits.close()
            raise
        guards = build_guards(project)
        for guard in guards:
            await guard.open()
        gateway = cls(project, analysis, queries, audits, guards=guards,
                      authenticator=identity.build_authenticator(project), policy_version=version,
                      checks_pool=checks, adhoc_setting=prepared)
        gateway.writer.start()
        return gateway

    async def close(self) -> None:
        await self.token_checks.stop()
        await self.writer.stop()
        for guard in self.guards:
            await guard.close()
        await self.query_pool.close()
        if self.checks_pool is not None:
            await self.checks_pool.close()
        await self.audit_pool.close()

    # What the front doors use besides calls: named doors, not the pools themselves.

    @asynccontextmanager
    async def directory(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A connection to the served database, where the directory lives (people, tokens,
        grants, access requests); 503 when none frees up within the pool timeout."""
        try:
            async with self.query_pool.connection() as conn:
                yield conn
        except PoolTimeout:
            raise execute.busy() from None

    @asynccontextmanager
    async def audit_log(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A connection to the audit store, for reading the log and the alerts on it."""
        try:
            async with self.audit_pool.connection() as conn:
                yield conn
        except PoolTimeout:
            raise execute.busy("audit store") from None

    async def record(self, event: audit.AuditEvent) -> audit.Receipt:
        """Append an event that is not a call (an identity change, an audit read) and wait for
        its commit; 503 (``AuditUnavailable``) when it cannot be recorded."""
        return await audit.append(self.audit_pool, event,
                                  timeout_s=self.project.settings.audit_timeout_ms / 1000)

    async def report(self, kind: str, *, subjects: tuple[tuple[str, str], ...], user: str | None,
                     days: int, since: dt.datetime | None, until: dt.datetime | None,
                     generated_by: str) -> reports.Report:
        """A compliance report by name (``reports.KINDS``), over this gateway's stores."""
        return await reports.build(kind, self.project, self.audit_pool, self.query_pool,
                                   subjects=subjects, user=user, days=days, since=since,
                                   until=until, generated_by=generated_by)

    async def readiness(self) -> Readiness:
        """Can this process serve a call now: the database, the audit store, the signing key."""
        return await check_readiness(self.project, self.query_pool, self.audit_pool,
                                     lambda: self.writer.running)

    async def refresh_metrics(self, timeout_s: float) -> None:
        """Read the deployment's shared figures (audit head, detector lag) for a scrape."""
        await metrics.STORE.refresh(self.audit_pool, timeout_s)

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

    async def authenticate(self, token: str | None, lease: execute.Lease | None = None, *,
                           function: str = "-", client_addr: str | None = None,
                           client: str = "http", application: str | None = None) -> Identity:
        """Who ``token`` stands for, checked against the directory now; a refusal is audited
        (``decision: denied``, no actor), a flood of them within ``RefusalBudget``.
        ``application`` (a PostgreSQL client's application_name) lands in the event's context."""
        try:
            return await self._identify(token, lease)
        except NotAuthenticated as exc:
            skipped = self._refusals.take()
            if skipped is not None:
                if lease is not None:
                    await lease.release()
                event = self._draft(None, function, client_addr, client, application)
                if skipped:
                    event.notes["unrecorded_refusals"] = str(skipped)
                await self.writer.append(event.finish("denied", error_code=exc.code))
            raise

    async def _identify(self, token: str | None, lease: execute.Lease | None) -> Identity:
        """querygate's own tokens (and a missing one) go through ``token_checks``: with the
        concurrent calls' tokens, or alone on ``lease``'s connection. Anything else (a JWT)
        goes to the authenticator, on ``lease``'s connection when one is given. The call's
        query then runs on that connection too."""
        try:
            if token is None or token.startswith(identity.TOKEN_PREFIX):
                alone = lease.connection if lease is not None and self._calls <= 1 else None
                return await self.token_checks.check(token, alone)  # alone: no other call now
            if lease is not None:
                return await self.authenticator.authenticate(await lease.connection(), token)
            async with self.query_pool.connection() as conn:
                return await self.authenticator.authenticate(conn, token)
        except PoolTimeout:
            raise execute.busy() from None
        except psycopg.Error as exc:
            raise execute.upstream_error(exc) from None

    @metrics.observed()
    async def call(self, token: str | None, function: str, params: object,
                   reason: object = None, client_addr: str | None = None, *,
                   client: str = "http", application: str | None = None) -> CallResult:
        """Authenticate, decide, run, mask and audit one call of a named function. ``client``
        names the front door it came through (``http``, ``postgres``, ``mcp``, ``console``,
        ``cli``), kept in the audit event, as is ``application`` when given."""
        self._calls += 1
        try:
            async with self._lease() as lease:
                context, event = await self._admitted(token, function, params, reason,
                                                      client_addr, client, lease, application)
                rows = Collected()
                outcome = await self._run(event, context, self._fetch_all(context, lease), rows,
                                          lease=lease)
        finally:
            self._calls -= 1
        return CallResult(outcome.columns, rows.rows, context.plan.fields, outcome.truncated,
                          outcome.receipt)

    @metrics.observed()
    async def export(self, token: str | None, function: str, params: object,
                     reason: object = None, client_addr: str | None = None, *,
                     client: str = "http") -> Export:
        """A large result, streamed from PostgreSQL and masked into a spool file; the audit
        event (with every subject) commits before the caller reads the first byte."""
        context, event = await self._admitted(token, function, params, reason, client_addr,
                                              client)
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

    @metrics.observed(ADHOC_FUNCTION)
    async def sql(self, token: str | None, text: object, reason: object = None,
                  client_addr: str | None = None, *, client: str = "http",
                  application: str | None = None) -> CallResult:
        """Ad-hoc SQL for roles granted ``adhoc: true``: the same analysis, masks and audit."""
        async with self._lease() as lease:
            who = await self.authenticate(token, lease, function=ADHOC_FUNCTION,
                                          client_addr=client_addr, client=client,
                                          application=application)
            event = self._draft(who, ADHOC_FUNCTION, client_addr, client, application)
            try:
                event.parameters = {"sql": text if isinstance(text, str) else None}
                why = checked_reason(reason)
                event.reason = why
                statement = prepare_adhoc(self.adhoc, who, dict(self.project.roles), text)
            except QuerygateError as exc:
                await self._record_failure(event, exc, lease)
                raise
            context = CallContext(who, statement.analysed, statement.plan, {}, why, client_addr,
                                  notes=dict(event.notes))
            event.notes = context.notes
            rows = Collected()
            outcome = await self._run(event, context,
                                      self._fetch_adhoc(context, statement.sql, lease), rows,
                                      adhoc=True, lease=lease)
        return CallResult(outcome.columns, rows.rows, statement.plan.fields, outcome.truncated,
                          outcome.receipt)

    def _draft(self, who: Identity | None, function: str, client_addr: str | None, client: str,
               application: str | None) -> EventDraft:
        event = EventDraft(who, function, client_addr, self.policy_version, client)
        if application:
            event.notes["application"] = printable(application, 64)
        return event

    def _lease(self) -> execute.Lease:
        return execute.Lease(self.query_pool, self.project.settings.pool_timeout_s)

    async def _admitted(self, token: str | None, function: str, params: object, reason: object,
                        client_addr: str | None, client: str,
                        lease: execute.Lease | None = None,
                        application: str | None = None) -> tuple[CallContext, EventDraft]:
        who = await self.authenticate(token, lease, function=function, client_addr=client_addr,
                                      client=client, application=application)
        event = self._draft(who, function, client_addr, client, application)
        try:
            who, analysed, plan_, values, why = self._admit(who, function, params, reason)
            event.who, event.reason = who, why
            event.parameters = audit_parameters(analysed, values, self._param_key)
        except QuerygateError as exc:
            await self._record_failure(event, exc, lease)
            raise
        context = CallContext(who, analysed, plan_, values, why, client_addr,
                              notes=dict(event.notes))
        event.notes = context.notes
        return context, event

    async def _fetch_all(self, context: CallContext, lease: execute.Lease,
                         ) -> AsyncIterator[execute.Result]:
        """The call's query on its leased connection, which goes back to the pool once read."""
        try:
            result = await execute.run(await lease.connection(),
                                       context.function.function.exec_sql, dict(context.values),
                                       max_rows=self.project.settings.max_rows,
                                       label=identity.query_label(context.identity))
        finally:
            await lease.release()
        yield result

    async def _fetch_adhoc(self, context: CallContext, sql: str, lease: execute.Lease,
                           ) -> AsyncIterator[execute.Result]:
        """A rewritten ad-hoc statement, as the ad-hoc role, in a transaction of its own."""
        try:
            result = await adhoc.run_adhoc(await lease.connection(), sql,
                                           max_rows=self.project.settings.max_rows,
                                           label=identity.query_label(context.identity))
        finally:
            await lease.release()
        yield result

    async def _run(self, event: EventDraft, context: CallContext,
                   chunks: AsyncIterator[execute.Result], sink: Sink,
                   *, adhoc: bool = False, lease: execute.Lease | None = None) -> Outcome:
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
                    if not adhoc:  # ad-hoc rows come from masked sources, not the tables
                        self._check_origins(analysed, result)
                    columns = result.columns
                add_subjects(found, plan_, result.rows)
                sink.write(plan_.shown(result.rows) if adhoc
                           else plan_.masked(result.rows, self._mask_key))
                count, truncated = count + len(result.rows), result.truncated
            subjects = with_parameters(found, analysed, context.values, count)
            for guard in self.guards:
                await guard.before_release(context, subjects)
        except UpstreamError as exc:
            failure: QuerygateError = exc
            if adhoc and (exc.sqlstate or "")[:2] in ("42", "22"):  # the caller's own SQL
                failure = BadParameters(f"PostgreSQL refused the statement (SQLSTATE "
                                        f"{exc.sqlstate})", parameter="sql")
            await self._record_failure(event, failure, lease)
            raise failure from None
        except QuerygateError as exc:
            await self._record_failure(event, exc, lease)
            raise
        except asyncio.CancelledError:  # the caller went away: record it, then stop
            await asyncio.shield(self._record_failure(
                event, ClientGone("the client disconnected; the query was cancelled"), lease))
            raise
        receipt = await self.writer.append(event.finish(
            "allowed", rows=count, fields=plan_.decisions, subjects=subjects))
        visible = [(columns or [])[i] for i in plan_.visible()] if columns else []
        return Outcome(visible, truncated, receipt)

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
        return who, analysed, plan_, values, checked_reason(reason)

    async def _record_failure(self, event: EventDraft, exc: QuerygateError,
                              lease: execute.Lease | None = None) -> None:
        """Audit a refused or failed call; its query connection, if any, goes back first."""
        if lease is not None:
            await lease.release()
        decision = "denied" if exc.status in (403, 404) else "error"
        await self.writer.append(event.finish(decision, error_code=exc.code))
