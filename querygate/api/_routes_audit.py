"""The audit and report API: subject lookups, event search, the log's head, and reports.

Only callers holding a role listed in ``audit.readers`` (querygate.yaml) may use it, and every
use is itself an audit event (``querygate.audit.*``): reading who saw a customer's data is an
access to that customer's data.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from querygate import audit, reports
from querygate.api._http import bearer_token, handle_errors, json_response
from querygate.errors import BadParameters, PolicyDenied
from querygate.gateway import Gateway
from querygate.identity import Identity

MAX_PAGE = 1000
_MEDIA = {"html": "text/html; charset=utf-8", "csv": "text/csv; charset=utf-8",
          "json": "application/json"}


def _moment(request: Request, name: str) -> dt.datetime | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise BadParameters(f"{name} must be a date (YYYY-MM-DD) or ISO 8601 timestamp",
                            parameter=name) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _int(request: Request, name: str, default: int, high: int) -> int:
    value = request.query_params.get(name, str(default))
    if not value.isdigit() or not 1 <= int(value) <= high:
        raise BadParameters(f"{name} must be a whole number from 1 to {high}", parameter=name)
    return int(value)


class AuditApi:
    """The handlers, sharing one gateway and its audit pool."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def reader(self, request: Request, action: str, parameters: dict[str, Any],
                     subjects: tuple[tuple[str, str], ...] = ()) -> Identity:
        """The caller, if a role of theirs is an audit reader; refusals are audited too."""
        who = await self.gateway.authenticate(bearer_token(request))
        readers = set(self.gateway.project.section("audit").get("readers") or [])
        if readers & set(who.roles):
            return who
        await self.record(request, who, action, parameters, subjects, decision="denied",
                          error_code=PolicyDenied.code)
        raise PolicyDenied("audit.readers", "only roles listed in audit.readers in "
                                            "querygate.yaml may read the audit log")

    async def record(self, request: Request, who: Identity, action: str,
                     parameters: dict[str, Any], subjects: tuple[tuple[str, str], ...] = (),
                     *, decision: str = "allowed", rows: int = 0,
                     error_code: str | None = None) -> audit.Receipt:
        event = audit.AuditEvent(
            occurred_at=dt.datetime.now(dt.UTC), function_name=f"querygate.audit.{action}",
            decision=decision, actor_id=who.user_id, actor_email=who.email,
            actor_roles=who.roles, parameters={k: v for k, v in parameters.items() if v is not None},
            error_code=error_code, rows_returned=rows, subjects=subjects,
            client_addr=request.client.host if request.client else None,
            context=dict(who.context))
        return await self.gateway.record(event)

    async def _search(self, query: audit.Query) -> tuple[list[audit.StoredEvent], float]:
        started = time.perf_counter()
        async with self.gateway.audit_log() as conn:
            found = await audit.search(conn, query)
        return found, (time.perf_counter() - started) * 1000

    def _answer(self, found: list[audit.StoredEvent], db_ms: float, started: float,
                receipt: audit.Receipt) -> Response:
        total = (time.perf_counter() - started) * 1000
        response = json_response({"events": [e.export() for e in found], "count": len(found),
                                  "server_ms": round(db_ms, 3),
                                  "receipt": {"seq": receipt.seq, "hash": receipt.hash}})
        response.headers["Server-Timing"] = f"db;dur={db_ms:.3f}, total;dur={total:.3f}"
        return response

    async def subject(self, request: Request) -> Response:
        started = time.perf_counter()
        subject = (request.path_params["type"], request.path_params["id"])
        since, until = _moment(request, "from"), _moment(request, "to")
        params = {"subject": f"{subject[0]}:{subject[1]}", "from": request.query_params.get("from"),
                  "to": request.query_params.get("to")}
        who = await self.reader(request, "subject", params, (subject,))
        found, db_ms = await self._search(audit.Query(
            subject=subject, since=since, until=until, limit=_int(request, "limit", 100, MAX_PAGE)))
        receipt = await self.record(request, who, "subject", params, (subject,), rows=len(found))
        return self._answer(found, db_ms, started, receipt)

    async def events(self, request: Request) -> Response:
        started = time.perf_counter()
        q = request.query_params
        decision = q.get("decision")
        if decision not in (None, "allowed", "denied", "error"):
            raise BadParameters("decision must be allowed, denied or error", parameter="decision")
        params = {k: q.get(k) for k in ("user", "function", "decision", "from", "to")}
        who = await self.reader(request, "search", params)
        found, db_ms = await self._search(audit.Query(
            user=q.get("user"), function=q.get("function"), decision=decision,
            since=_moment(request, "from"), until=_moment(request, "to"),
            limit=_int(request, "limit", 100, MAX_PAGE)))
        receipt = await self.record(request, who, "search", params, rows=len(found))
        return self._answer(found, db_ms, started, receipt)

    async def head(self, request: Request) -> Response:
        await self.reader(request, "head", {})
        async with self.gateway.audit_log() as conn:
            cur = await conn.execute("SELECT log_id, seq, hash FROM querygate.audit_head")
            row = await cur.fetchone()
        assert row is not None
        return json_response({"log_id": str(row[0]), "seq": row[1], "hash": bytes(row[2]).hex()})

    async def report(self, request: Request) -> Response:
        kind, q = request.path_params["kind"], request.query_params
        fmt = q.get("format", "json")
        if fmt not in reports.FORMATS:
            raise BadParameters("format must be html, csv or json", parameter="format")
        params = {k: q.get(k) for k in ("subject", "user", "days", "from", "to")}
        subjects = _report_subjects(kind, q.get("subject"))
        who = await self.reader(request, f"report.{kind}", params, subjects)
        report = await self._build(kind, request, subjects, who)
        await self.record(request, who, f"report.{kind}", params, subjects,
                          rows=sum(len(s.rows) for s in report.sections))
        return Response(reports.render(report, fmt), media_type=_MEDIA[fmt])

    async def _build(self, kind: str, request: Request, subjects: tuple[tuple[str, str], ...],
                     who: Identity) -> reports.Report:
        since, until = _moment(request, "from"), _moment(request, "to")
        offboard = kind == "offboarding"
        return await self.gateway.report(
            kind, subjects=subjects, user=_user(request) if offboard else None,
            days=_int(request, "days", 30, 3660) if offboard else 30,
            since=since, until=until, generated_by=f"{who.email} (API)")


def _user(request: Request) -> str:
    user = request.query_params.get("user")
    if not user:
        raise BadParameters("user (an email) is required", parameter="user")
    return user


def _report_subjects(kind: str, subject: str | None) -> tuple[tuple[str, str], ...]:
    if kind not in ("subject-access", "offboarding", "access-review", "soc2"):
        raise BadParameters("reports are subject-access, offboarding, access-review and soc2",
                            parameter="kind")
    if kind != "subject-access":
        return ()
    kind_, sep, ident = (subject or "").partition(":")
    if not sep or not kind_ or not ident:
        raise BadParameters("subject must be TYPE:ID, e.g. customer:42", parameter="subject")
    return ((kind_, ident),)


def routes(gateway: Gateway) -> list[Route]:
    api = AuditApi(gateway)
    return [
        Route("/v1/audit/subjects/{type}/{id}", handle_errors(api.subject), methods=["GET"]),
        Route("/v1/audit/events", handle_errors(api.events), methods=["GET"]),
        Route("/v1/audit/head", handle_errors(api.head), methods=["GET"]),
        Route("/v1/reports/{kind}", handle_errors(api.report), methods=["GET"]),
    ]
