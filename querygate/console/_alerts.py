"""Alerts to triage: what the detector raised, the events behind each, and acknowledging one
with a note (and, for a person the detector suspended, reinstating them as ``POST
/v1/alerts/{id}/ack`` does). For the roles in ``alerts.reviewers``; each acknowledgement is
audited."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from querygate import identity
from querygate.audit import COLUMNS, StoredEvent
from querygate.console._audit import row
from querygate.console._web import Console, Form, Viewer
from querygate.detect import acknowledge, add_action, get_alert, list_alerts
from querygate.errors import BadParameters
from querygate.gateway import Gateway

PAGE = 50
MAX_NOTE = 2000
STATUSES = ("open", "acknowledged", "all")


def routes(console: Console) -> list[Route]:
    gateway = console.gateway

    async def people() -> dict[str, str]:
        async with gateway.directory() as conn:
            return {u.id: u.email for u in await identity.list_users(conn)}

    async def suspended(actor_id: str) -> bool:
        async with gateway.directory() as conn:
            return any(u.id == actor_id and u.status == "suspended"
                       for u in await identity.list_users(conn))

    async def listing(request: Request, viewer: Viewer, form: Form) -> Response:
        q = request.query_params
        status = q.get("status") or "open"
        if status not in STATUSES:
            raise BadParameters("status is open, acknowledged or all", parameter="status")
        page = int(q["page"]) if (q.get("page") or "").isdigit() and int(q["page"]) > 0 else 1
        limit = min(page * PAGE + 1, 1000)
        async with gateway.audit_log() as conn:
            found = await list_alerts(conn, status=None if status == "all" else status,
                                      limit=limit)
        shown = found[(page - 1) * PAGE:page * PAGE]
        return console.render("alerts.html", viewer, alerts=shown, status=status, page=page,
                              more=len(found) > page * PAGE and limit < 1000,
                              names=await people())

    async def show(request: Request, viewer: Viewer, form: Form, error: str | None = None,
                   status: int = 200) -> Response:
        alert_id = request.path_params["id"][:64]
        async with gateway.audit_log() as conn:
            stored = await get_alert(conn, alert_id)
            seqs = [int(r) for r in stored.alert.events if r.isdigit()][:200]
            cur = await conn.execute(f"SELECT {COLUMNS} FROM querygate.audit_events "
                                     "WHERE seq = ANY(%s) ORDER BY seq", (seqs,))
            events = [row(StoredEvent(r)) for r in await cur.fetchall()]
        return console.render("alert.html", viewer, status, a=stored, events=events,
                              names=await people(), error=error, form=form,
                              suspended=await suspended(stored.alert.actor_id))

    async def ack(request: Request, viewer: Viewer, form: Form) -> Response:
        note = (form.get("note") or "").strip()
        if not note or len(note) > MAX_NOTE:
            return await show(request, viewer, form, f"Say what your review found (a note of 1 to "
                              f"{MAX_NOTE} characters).", 422)
        alert_id = request.path_params["id"][:64]
        async with gateway.audit_log() as conn:
            stored = await acknowledge(conn, alert_id, by=viewer.who.email, note=note)
            # the API's reinstatement: only a person the detector suspended, never an offboarding
            reinstated = form.get("reinstate") == "yes" and await _reinstate(
                gateway, stored.alert.actor_id)
            if reinstated:
                await add_action(conn, alert_id, f"reinstated by {viewer.who.email}")
        await console.record(request, viewer.who, "alerts.ack", {"alert": alert_id},
                             context={"alert": alert_id, "rule": stored.alert.rule,
                                      "alert_actor": stored.alert.actor_id,
                                      "reinstated": str(reinstated).lower()})
        return await show(request, viewer, {})

    return [
        Route("/alerts", console.page(listing, need="alerts"), methods=["GET"]),
        Route("/alerts/{id}", console.page(show, need="alerts"), methods=["GET"]),
        Route("/alerts/{id}/ack", console.page(ack, need="alerts"), methods=["POST"]),
    ]


async def _reinstate(gateway: Gateway, actor_id: str) -> bool:
    async with gateway.directory() as conn, identity.writing(conn):
        return await identity.reinstate(conn, actor_id)
