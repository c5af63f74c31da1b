"""For compliance: who accessed a record and what they saw; one person's activity; events,
integrity and reports.

For the roles in ``audit.readers``. Reading the log is itself an access (reading who saw a
customer's data is an access to that customer's data), so every page and download here writes
an audit event (``querygate.audit.*``, ``client: console``) before it is shown.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from querygate import audit, identity, reports
from querygate.audit import COLUMNS, CheckpointConfig, StoredEvent
from querygate.console._web import Console, Form, Viewer, parse_moment, parse_subject, utc
from querygate.errors import BadParameters, NotFound, QuerygateError

PAGE = 50
REPORT_KINDS = {
    "subject-access": "Subject access (GDPR Art. 15)",
    "offboarding": "Offboarding",
    "access-review": "Access review",
    "soc2": "SOC 2 evidence pack",
}
_MEDIA = {"html": "text/html; charset=utf-8", "csv": "text/csv; charset=utf-8",
          "json": "application/json"}


@dataclass(frozen=True)
class Row:
    """One event as the audit tables show it: fields in clear, and those masked or omitted."""

    stored: StoredEvent
    clear: list[str]
    protected: list[tuple[str, str]]

    @property
    def e(self) -> audit.AuditEvent:
        return self.stored.event


def row(stored: StoredEvent) -> Row:
    fields = dict(stored.event.fields)
    return Row(stored, sorted(c for c, d in fields.items() if d == "allow"),
               sorted((c, d) for c, d in fields.items() if d != "allow"))


def intact(stored: StoredEvent) -> bool:
    """The event's content matches its hash, and the hash links it to its predecessor."""
    return (stored.event.content_hash() == stored.content_hash
            and audit.link(stored.prev_hash, stored.seq, stored.content_hash) == stored.hash)


@dataclass
class LastVerify:
    at: dt.datetime
    by: str
    result: audit.Verification
    ms: float


def routes(console: Console) -> list[Route]:
    gateway = console.gateway
    last: list[LastVerify] = []  # the newest verification run from this console process

    async def search(query: audit.Query) -> list[StoredEvent]:
        async with gateway.audit_log() as conn:
            return await audit.search(conn, query)

    async def events(request: Request, viewer: Viewer, form: Form) -> Response:
        q = request.query_params
        subject = parse_subject(q.get("subject"))
        user = (q.get("user") or "").strip() or None
        decision = q.get("decision") or None
        if decision not in (None, "allowed", "denied", "error"):
            raise BadParameters("decision is allowed, denied or error", parameter="decision")
        since = parse_moment(q.get("from"), "from")
        until = parse_moment(q.get("to"), "to", end=True)
        before = parse_moment(q.get("before"), "before")
        if before is not None and (until is None or before < until):
            until = before
        query = audit.Query(user=user, function=q.get("function") or None, subject=subject,
                            since=since, until=until, decision=decision, limit=PAGE + 1)
        found = await search(query)
        more = found[PAGE] if len(found) > PAGE else None
        found = found[:PAGE]
        params = {"subject": q.get("subject"), "user": user, "function": q.get("function"),
                  "decision": decision, "from": q.get("from"), "to": q.get("to"),
                  "before": q.get("before")}
        await console.record(request, viewer.who, "audit.subject" if subject else "audit.search",
                             params, (subject,) if subject else (), rows=len(found))
        # the next page ends just after the first event not shown: an event sharing its time
        # may show twice, none is skipped
        older = utc(more.event.occurred_at + dt.timedelta(microseconds=1)) if more else None
        offboarding = await _offboarding(user) if user and not subject else None
        return console.render("audit.html", viewer, rows=[row(e) for e in found], q=q,
                              subject=subject, user=user, older=older, report=offboarding)

    async def _offboarding(user: str) -> tuple[identity.User, identity.AccessReport] | None:
        """The offboarding view of a person: what they accessed in the last 14 days."""
        async with gateway.directory() as conn:
            try:
                person = await identity.get_user(conn, user)
            except identity.IdentityError:
                return None
        async with gateway.audit_log() as conn:
            return person, await identity.access_report(conn, person.id)

    async def event(request: Request, viewer: Viewer, form: Form) -> Response:
        seq_text = request.path_params["seq"]
        if not seq_text.isdigit() or len(seq_text) > 18:
            raise NotFound("an event is named by its sequence number, e.g. /console/audit/events/42")
        seq = int(seq_text)
        async with gateway.audit_log() as conn:
            cur = await conn.execute(f"SELECT {COLUMNS} FROM querygate.audit_events "
                                     "WHERE seq = %s", (seq,))
            found = await cur.fetchone()
            head = await audit_head(conn)
        if found is None:
            raise NotFound(f"there is no audit event {seq}; the log's newest is {head[1]}")
        stored = StoredEvent(found)
        await console.record(request, viewer.who, "audit.event", {"seq": seq},
                             tuple(stored.event.subjects), rows=1)
        return console.render("event.html", viewer, r=row(stored), ok=intact(stored),
                              head_seq=head[1], exported=stored.export())

    async def integrity(request: Request, viewer: Viewer, form: Form) -> Response:
        config = CheckpointConfig.from_project(gateway.project)
        if request.method == "POST":
            started = time.perf_counter()
            async with gateway.audit_log() as conn:
                await conn.execute("SET statement_timeout = 0")
                try:
                    result = await audit.verify_log(conn, config, from_checkpoint=True)
                finally:
                    await conn.execute("SET statement_timeout = "
                                       f"{int(gateway.project.settings.audit_timeout_ms)}")
            last[:] = [LastVerify(dt.datetime.now(dt.UTC), viewer.who.email, result,
                                  (time.perf_counter() - started) * 1000)]
            await console.record(request, viewer.who, "audit.verify",
                                 {"ok": str(result.ok).lower(), "head_seq": result.head_seq},
                                 rows=result.checked)
        async with gateway.audit_log() as conn:
            head = await audit_head(conn)
        try:
            checkpoints = audit.read_folder(config.folder)
            checkpoint_problem = None
        except QuerygateError as exc:
            checkpoints, checkpoint_problem = [], exc.message
        return console.render("integrity.html", viewer, head=head, last=last[0] if last else None,
                              checkpoint=checkpoints[-1] if checkpoints else None,
                              checkpoints=len(checkpoints), problem=checkpoint_problem,
                              signing=config.private_key is not None or bool(config.public_key))

    async def report_forms(request: Request, viewer: Viewer, form: Form) -> Response:
        return console.render("reports.html", viewer, kinds=REPORT_KINDS)

    async def report(request: Request, viewer: Viewer, form: Form) -> Response:
        kind, q = request.path_params["kind"], request.query_params
        if kind not in REPORT_KINDS:
            raise NotFound("the reports are subject access, offboarding, access review and SOC 2")
        fmt = q.get("format", "html")
        if fmt not in reports.FORMATS:
            raise BadParameters("format is html, csv or json", parameter="format")
        subject = parse_subject(q.get("subject"))
        if kind == "subject-access" and subject is None:
            raise BadParameters("the subject access report needs a subject, e.g. customer:42",
                                parameter="subject")
        subjects = (subject,) if kind == "subject-access" and subject else ()
        days = q.get("days") or "30"
        if not days.isdigit() or not 1 <= int(days) <= 3660:
            raise BadParameters("days is a whole number from 1 to 3660", parameter="days")
        built = await _build(kind, subjects, q.get("user"), int(days),
                             parse_moment(q.get("from"), "from"),
                             parse_moment(q.get("to"), "to", end=True), viewer)
        params = {"format": fmt, "subject": q.get("subject"), "user": q.get("user"),
                  "days": days if kind == "offboarding" else None, "from": q.get("from"),
                  "to": q.get("to")}
        await console.record(request, viewer.who, f"audit.report.{kind}", params, subjects,
                             rows=sum(len(s.rows) for s in built.sections))
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        return Response(reports.render(built, fmt), media_type=_MEDIA[fmt], headers={
            "content-disposition": f'attachment; filename="{kind}-{stamp}.{fmt}"'})

    async def _build(kind: str, subjects: tuple[tuple[str, str], ...], user: str | None,
                     days: int, since: dt.datetime | None, until: dt.datetime | None,
                     viewer: Viewer) -> reports.Report:
        return await gateway.report(kind, subjects=subjects, user=user, days=days,
                                   since=since, until=until,
                                   generated_by=f"{viewer.who.email} (console)")

    return [
        Route("/audit", console.page(events, need="audit"), methods=["GET"]),
        Route("/audit/events/{seq}", console.page(event, need="audit"), methods=["GET"]),
        Route("/audit/integrity", console.page(integrity, need="audit"), methods=["GET", "POST"]),
        Route("/reports", console.page(report_forms, need="audit"), methods=["GET"]),
        Route("/reports/{kind}", console.page(report, need="audit"), methods=["GET"]),
    ]


async def audit_head(conn: psycopg.AsyncConnection[Any]) -> tuple[str, int, str]:
    cur = await conn.execute("SELECT log_id, seq, hash FROM querygate.audit_head")
    found = await cur.fetchone()
    if found is None:
        return "", 0, ""
    return str(found[0]), int(found[1]), bytes(found[2]).hex()
