"""Signing in and out: a pasted token, or OIDC single sign-on with PKCE.

The token form posts the token (never a URL); the session then maps to it. OIDC is the
authorization code grant with PKCE (RFC 7636), the same flow ``querygate login`` runs from a
laptop (``identity._login``), with this server as the client: the verifier and state wait in
this process, keyed by the state a short-lived cookie names, and the access token it returns
is checked by the gateway like any bearer token, on every request.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from querygate import identity
from querygate.console._sessions import COOKIE, OidcTokens
from querygate.console._web import (
    CLIENT,
    LOGIN_COOKIE,
    Console,
    Form,
    Viewer,
    client_addr,
    message,
    read_form,
)
from querygate.errors import NotAuthenticated, QuerygateError

OIDC_COOKIE = "qg_console_oidc"
PENDING_S = 600.0  # an OIDC sign-in must come back within this


@dataclass(frozen=True)
class Pending:
    verifier: str
    redirect: str
    started: float


def _cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/console", httponly=True,
                        samesite="lax", secure=request.url.scheme == "https")


def routes(console: Console) -> list[Route]:
    gateway = console.gateway
    pending: dict[str, Pending] = {}

    def login_page(request: Request, status: int = 200, error: str | None = None) -> Response:
        nonce = console.login_nonce(request)
        response = console.render("login.html", None, status, csrf=console.login_csrf(nonce),
                                  note=message(request.query_params.get("m")), error=error,
                                  oidc=console.oidc is not None)
        _cookie(response, request, LOGIN_COOKIE, nonce, 3600)
        return response

    async def signed_in(request: Request, token: str, oidc: OidcTokens | None) -> Response:
        who = await gateway.authenticate(token, function="-", client_addr=client_addr(request),
                                         client=CLIENT)
        session_id, _ = console.sessions.create(token, who.email, oidc)
        await console.record(request, who, "console.signin",
                             context={"method": "oidc" if oidc else "token"})
        response = RedirectResponse("/console/functions", status_code=303)
        _cookie(response, request, COOKIE, session_id, int(console.sessions.max_age_s))
        response.delete_cookie(LOGIN_COOKIE, path="/console")
        response.delete_cookie(OIDC_COOKIE, path="/console")
        return response

    async def show(request: Request) -> Response:
        return login_page(request)

    async def submit(request: Request) -> Response:
        try:
            form = await read_form(request)
        except QuerygateError as exc:
            return login_page(request, 400, exc.message)
        if not console.login_csrf_ok(request, form.get("csrf")):
            return login_page(request, 403, "This sign-in form was stale or sent from another "
                              "site. It has been reloaded: paste your token again.")
        token = (form.get("token") or "").strip()
        if not token:
            return login_page(request, 400, "Paste your querygate token (it starts with qg_).")
        try:
            return await signed_in(request, token, None)
        except NotAuthenticated:
            return login_page(request, 401, "That token is unknown, expired or revoked. Ask an "
                              "administrator for a new one (querygate tokens issue).")
        except QuerygateError as exc:
            return login_page(request, exc.status, exc.message)

    async def sign_out(request: Request) -> Response:
        async def out(request: Request, viewer: Viewer, form: Form) -> Response:
            console.sessions.end(viewer.session)
            await console.record(request, viewer.who, "console.signout")
            response = RedirectResponse("/console/login?m=out", status_code=303)
            response.delete_cookie(COOKIE, path="/console")
            return response

        return await console.page(out)(request)

    async def oidc_start(request: Request) -> Response:
        settings = console.oidc
        if settings is None:
            return login_page(request, 404, "Single sign-on is not configured (identity.oidc "
                              "with a client_id in querygate.yaml).")
        assert settings.client_id is not None
        try:
            document = await asyncio.to_thread(identity.discover, settings.issuer,
                                               settings.http_timeout_s)
            endpoint = identity.oidc_endpoint(document, "authorization_endpoint")
        except (NotAuthenticated, httpx.HTTPError, OSError, ValueError):
            return login_page(request, 502, "The identity provider did not answer. Try again, "
                              "or paste a token.")
        now = time.monotonic()
        for state, item in list(pending.items()):
            if now - item.started > PENDING_S:
                del pending[state]
        verifier, state = secrets.token_urlsafe(48), secrets.token_urlsafe(24)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        redirect = f"{request.url.scheme}://{request.url.netloc}/console/login/oidc/callback"
        pending[state] = Pending(verifier, redirect, now)
        response = RedirectResponse(endpoint + "?" + urlencode({
            "response_type": "code", "client_id": settings.client_id, "redirect_uri": redirect,
            "scope": settings.scopes, "state": state,
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256"}), status_code=303)
        _cookie(response, request, OIDC_COOKIE, state, int(PENDING_S))
        return response

    async def oidc_callback(request: Request) -> Response:
        settings, q = console.oidc, request.query_params
        state = q.get("state") or ""
        item = pending.pop(state, None) if state == request.cookies.get(OIDC_COOKIE) else None
        if settings is None or item is None or not q.get("code") or \
                time.monotonic() - item.started > PENDING_S:
            return RedirectResponse("/console/login?m=oidc", status_code=303)
        assert settings.client_id is not None
        try:
            document = await asyncio.to_thread(identity.discover, settings.issuer,
                                               settings.http_timeout_s)
            tokens = await asyncio.to_thread(identity.oidc_token_request,
                                             identity.oidc_endpoint(document, "token_endpoint"), {
                "grant_type": "authorization_code", "code": q["code"],
                "redirect_uri": item.redirect, "client_id": settings.client_id,
                "code_verifier": item.verifier}, None, settings.http_timeout_s,
                settings.issuer, settings.client_id)
            return await signed_in(request, tokens.access_token, OidcTokens(
                settings.issuer, settings.client_id, tokens.expires_at, tokens.refresh_token))
        except (NotAuthenticated, httpx.HTTPError, OSError, ValueError):
            return RedirectResponse("/console/login?m=oidc", status_code=303)

    return [
        Route("/login", show, methods=["GET"]),
        Route("/login", submit, methods=["POST"]),
        Route("/logout", sign_out, methods=["POST"]),
        Route("/login/oidc", oidc_start, methods=["GET"]),
        Route("/login/oidc/callback", oidc_callback, methods=["GET"]),
    ]

