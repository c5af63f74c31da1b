"""Alerts over HTTP, for the roles in ``alerts.reviewers``.

- ``GET /v1/alerts?status=open|acknowledged|all&user=EMAIL&limit=N``
- ``GET /v1/alerts/{id}``: the alert with the audit events behind it
- ``POST /v1/alerts/{id}/ack`` with ``{"note": "...", "reinstate": false}``
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from querygate import execute, identity
from querygate.api._http import bearer_token, handle_errors, json_response, read_json
from querygate.audit import COLUMNS, StoredEvent
from querygate.detect import acknowledge, add_action, get_alert, list_alerts, load_settings
from querygate.errors import BadParameters, PolicyDenied
from querygate.gateway import Gateway
from querygate.identity import Identity

MAX_NOTE = 2000


def routes(gateway: Gateway) -> list[Route]:
    reviewers = load_settings(gateway.project).alerts.reviewers

    async def reviewer(request: Request) -> Identity:
        who = await gateway.authenticate(bearer_token(request))
        if not reviewers & set(who.roles):
            allowed = ", ".join(sorted(reviewers)) or "none (set alerts.reviewers)"
            raise PolicyDenied("alerts.reviewers",
                               f"alerts are for reviewers; roles that may review: {allowed}")
        return who

    @asynccontextmanager
    async def store() -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        try:
            async with gateway.audit_log() as conn:
                yield conn
        except PoolTimeout:
            raise execute.busy("audit store") from None
        except psycopg.Error as exc:
            raise execute.upstream_error(exc) from None

    async def listing(request: Request) -> Response:
        await reviewer(request)
        status = request.query_params.get("status", "open")
        if status not in ("open", "acknowledged", "all"):
            raise BadParameters("status must be open, acknowledged or all", parameter="status")
        limit = request.query_params.get("limit", "100")
        if not limit.isdigit() or not 0 < int(limit) <= 1000:
            raise BadParameters("limit must be a number from 1 to 1000", parameter="limit")
        actor = await _actor(gateway, request.query_params.get("user"))
        async with store() as conn:
            found = await list_alerts(conn, status=None if status == "all" else status,
                                      actor=actor, limit=int(limit))
        return json_response({"alerts": [a.to_json() for a in found]})

    async def show(request: Request) -> Response:
        await reviewer(request)
        async with store() as conn:
            stored = await get_alert(conn, request.path_params["alert_id"])
            seqs = [int(r) for r in stored.alert.events if r.isdigit()]
            cur = await conn.execute(f"SELECT {COLUMNS} FROM querygate.audit_events "
                                     "WHERE seq = ANY(%s) ORDER BY seq", (seqs,))
            events = [StoredEvent(row).export() for row in await cur.fetchall()]
        return json_response({"alert": stored.to_json(), "audit_events": events})

    async def ack(request: Request) -> Response:
        who = await reviewer(request)
        body = await read_json(request, gateway.project.settings.max_request_bytes,
                               allowed=frozenset({"note", "reinstate"}))
        note, reinstate = body.get("note"), body.get("reinstate", False)
        if not isinstance(note, str) or not note.strip() or len(note) > MAX_NOTE:
            raise BadParameters(f"note: say what the review found (at most {MAX_NOTE} "
                                "characters)", parameter="note")
        if not isinstance(reinstate, bool):
            raise BadParameters("reinstate must be true or false", parameter="reinstate")
        alert_id = request.path_params["alert_id"]
        async with store() as conn:
            stored = await acknowledge(conn, alert_id, by=who.email, note=note)
            if reinstate and await _reinstate(gateway, stored.alert.actor_id):
                await add_action(conn, alert_id, f"reinstated by {who.email}")
            stored = await get_alert(conn, alert_id)
        return json_response({"alert": stored.to_json()})

    return [
        Route("/v1/alerts", handle_errors(listing), methods=["GET"]),
        Route("/v1/alerts/{alert_id}", handle_errors(show), methods=["GET"]),
        Route("/v1/alerts/{alert_id}/ack", handle_errors(ack), methods=["POST"]),
    ]


async def _actor(gateway: Gateway, user: str | None) -> str | None:
    """``user`` as an actor id: an email is looked up in the directory."""
    if not user or "@" not in user:
        return user
    async with gateway.directory() as conn:
        row = await (await conn.execute("SELECT id FROM querygate.users WHERE email = %s",
                                        (user.lower(),))).fetchone()
        await conn.rollback()
    if row is None:
        raise BadParameters("no such user", parameter="user")
    return str(row[0])


async def _reinstate(gateway: Gateway, actor_id: str) -> bool:
    """Only a person the detector suspended, never an offboarding."""
    try:
        async with gateway.directory() as conn, identity.writing(conn):
            return await identity.reinstate(conn, actor_id)
    except psycopg.Error as exc:
        raise execute.upstream_error(exc) from None
