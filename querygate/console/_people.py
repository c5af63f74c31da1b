"""For admins: people and services, revoking and offboarding them, access requests, the plan.

Revoke (suspend) and offboard run ``identity.offboard``, the one path the command line and SCIM
take: status, tokens, sign-in sessions, grants and running queries at once. Each asks for a
confirmation first and is audited like the command line's (``querygate.offboard``), with
``client: console``. Approving or denying a just-in-time request is audited as the API's is; an
approval whose event cannot be written is undone.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from querygate import identity
from querygate.console._web import CLIENT, Console, Form, Viewer, client_addr
from querygate.errors import AuditUnavailable, NotFound, QuerygateError

PAGE = 50
ACTIONS = {
    "revoke": ("suspended", "Revoke access",
               "Their status becomes suspended: every API token is revoked, sign-in sessions "
               "(console and single sign-on) end, just-in-time grants are revoked and their "
               "running queries are cancelled. An administrator can reinstate them later."),
    "offboard": ("offboarded", "Offboard",
                 "Their status becomes offboarded, for good: every API token is revoked, "
                 "sign-in sessions end, grants are revoked and running queries are cancelled. "
                 "You then see what they accessed in their last 14 days."),
}


def routes(console: Console) -> list[Route]:
    gateway = console.gateway
    project = gateway.project
    access = identity.identity_settings(project).access

    async def directory() -> list[identity.User]:
        async with gateway.directory() as conn:
            return await identity.list_users(conn)

    async def person(user_id: str) -> identity.User:
        found = [u for u in await directory() if u.id == user_id]
        if not found:
            raise NotFound("there is no such person or service; the users page lists them")
        return found[0]

    async def users(request: Request, viewer: Viewer, form: Form) -> Response:
        q = request.query_params
        status = q.get("status") or "all"
        everyone = await directory()
        shown = [u for u in everyone if status == "all" or u.status == status]
        page = int(q["page"]) if (q.get("page") or "").isdigit() and int(q["page"]) > 0 else 1
        await console.record(request, viewer.who, "console.users", {"status": status},
                             rows=len(shown))
        return console.render("users.html", viewer, users=shown[(page - 1) * PAGE:page * PAGE],
                              total=len(shown), page=page, pages=max(1, -(-len(shown) // PAGE)),
                              status=status, counts=_counts(everyone))

    async def user(request: Request, viewer: Viewer, form: Form) -> Response:
        found = await person(request.path_params["id"])
        async with gateway.audit_log() as conn:
            report = await identity.access_report(conn, found.id)
        await console.record(request, viewer.who, "console.user", {"user": found.email}, rows=1)
        return console.render("user.html", viewer, user=found, report=report, done=None,
                              actions=ACTIONS)

    async def act(request: Request, viewer: Viewer, form: Form) -> Response:
        action = request.path_params["action"]
        if action not in ACTIONS:
            raise NotFound("the actions on a person are revoke and offboard")
        found = await person(request.path_params["id"])
        status, title, effect = ACTIONS[action]
        if form.get("confirm") != "yes":
            return console.render("confirm.html", viewer, user=found, action=action, title=title,
                                  effect=effect)
        async with gateway.directory() as conn:
            done = await identity.offboard(conn, found.email, by=viewer.who.email, status=status)
        ended = console.sessions.end_for(found.email)
        await gateway.record(identity.identity_event(
            "offboard" if action == "offboard" else "suspend", actor=viewer.who,
            client_addr=client_addr(request), context={
                "user": done.user.id, "email": done.user.email, "status": status,
                "tokens_revoked": str(done.tokens_revoked),
                "grants_revoked": str(done.grants_revoked),
                "queries_cancelled": str(done.queries_cancelled),
                "console_sessions_ended": str(ended), "client": CLIENT}))
        async with gateway.audit_log() as conn:
            report = await identity.access_report(conn, found.id)
        return console.render("user.html", viewer, user=(await person(found.id)), report=report,
                              done=done, actions=ACTIONS)

    async def requests(request: Request, viewer: Viewer, form: Form) -> Response:
        async with gateway.directory() as conn:
            found = await identity.list_requests(conn, viewer.who, project)
        decidable = {r.role for r in found} & {
            role for role in project.roles
            if set(identity.approver_roles(project, role)) & set(viewer.who.standing_roles)}
        pending = [r for r in found if r.status == "pending" and r.role in decidable
                   and r.user_id != viewer.who.user_id]
        mine = [r for r in found if r.user_id == viewer.who.user_id]
        return console.render("access.html", viewer, pending=pending, mine=mine)

    async def decide(request: Request, viewer: Viewer, form: Form) -> Response:
        if request.path_params["decision"] not in ("approve", "deny"):
            raise NotFound("a request is approved or denied")
        approve = request.path_params["decision"] == "approve"
        request_id = request.path_params["id"][:64]
        note = (form.get("note") or "").strip() or None
        action = "access.approve" if approve else "access.deny"
        try:
            async with gateway.directory() as conn:
                result = await identity.decide(conn, viewer.who, project, access, request_id,
                                               approve=approve, note=note)
        except QuerygateError as exc:
            await gateway.record(identity.identity_event(
                action, actor=viewer.who, decision="denied" if exc.status < 500 else "error",
                error_code=exc.code, client_addr=client_addr(request),
                context={"access_request": request_id, "client": CLIENT}))
            raise
        context = {"access_request": result.id, "role": result.role, "requester": result.email,
                   "status": result.status, "client": CLIENT}
        try:
            await gateway.record(identity.identity_event(
                action, actor=viewer.who, reason=result.reason, context=context,
                client_addr=client_addr(request)))
        except AuditUnavailable:
            if approve:  # no elevation without its record
                async with gateway.directory() as conn, identity.writing(conn):
                    await identity.revoke_grants(conn, result.user_id, "audit_unavailable",
                                                 request_id=result.id)
            raise
        return await requests(request, viewer, form)

    async def plan(request: Request, viewer: Viewer, form: Form) -> Response:
        roles = list(project.roles)
        rows: list[dict[str, Any]] = []
        for name in sorted(gateway.functions):
            plans = {r: gateway.plan_for(name, (r,)) for r in roles}
            for column in gateway.functions[name].columns:
                cells = {}
                for r, p in plans.items():
                    if not p.granted_by:
                        cells[r] = ("", "not granted")
                    elif p.refusal is not None:
                        cells[r] = ("refused", p.refusal.reason)
                    else:
                        decision = p.decisions.get(column.name, "allow")
                        cells[r] = (decision, decision)
                rows.append({"function": name, "column": column.name, "tags": column.tags,
                             "cells": cells})
        return console.render("plan.html", viewer, roles=roles, rows=rows)

    return [
        Route("/users", console.page(users, need="admin"), methods=["GET"]),
        Route("/users/{id}", console.page(user, need="admin"), methods=["GET"]),
        Route("/users/{id}/{action}", console.page(act, need="admin"), methods=["POST"]),
        Route("/access", console.page(requests), methods=["GET"]),
        Route("/access/{id}/{decision}", console.page(decide), methods=["POST"]),
        Route("/plan", console.page(plan, need="plan"), methods=["GET"]),
    ]


def _counts(users: list[identity.User]) -> dict[str, int]:
    counts: dict[str, int] = {"all": len(users)}
    for u in users:
        counts[u.status] = counts.get(u.status, 0) + 1
    return counts
