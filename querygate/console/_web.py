"""What every console page shares: who is viewing, CSRF, forms, headers, rendering, auditing.

A page handler gets the ``Viewer`` (the identity, checked against the directory on this very
request) and the submitted form (POST only, its CSRF token already checked). Errors are shown
in plain words on the page; nothing unexpected escapes as a traceback.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from querygate import audit, identity
from querygate.console._refresh import refresh_if_due
from querygate.console._sessions import COOKIE, Session, SessionStore
from querygate.detect import load_settings as detect_settings
from querygate.errors import BadParameters, CsrfRefused, NotAuthenticated, PolicyDenied, QuerygateError
from querygate.gateway import Gateway
from querygate.identity import Identity

log = logging.getLogger("querygate.console")
CLIENT = "console"
MAX_FORM_BYTES = 256 * 1024
LOGIN_COOKIE = "qg_console_login"

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",  # no-referrer would make POSTs send Origin: null
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}

MESSAGES = {  # ?m=… on the sign-in page: codes, never text from the URL
    "ended": "Your session has ended: your access was revoked or has expired. Sign in again.",
    "signin": "Sign in to continue.",
    "out": "You are signed out.",
    "oidc": "Single sign-on did not complete. Try again, or paste a token.",
}


class SecurityHeaders:
    """Every console response (pages, files, redirects) carries the same security headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.decode().lower() not in HEADERS]
                headers += [(k.encode(), v.encode()) for k, v in HEADERS.items()]
                if not scope["path"].startswith("/console/static/"):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class SignedOut(Exception):
    """No usable session: back to the sign-in page with a message code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code




@dataclass(frozen=True)
class Viewer:
    who: Identity
    session: Session
    may_read_audit: bool
    may_admin: bool
    may_review_alerts: bool
    may_adhoc: bool

    @property
    def csrf(self) -> str:
        return self.session.csrf


Form = Mapping[str, str]
Handler = Callable[[Request, Viewer, Form], Awaitable[Response]]


def utc(moment: dt.datetime | str | None) -> str:
    if moment is None:
        return ""
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _when(moment: dt.datetime | str | None) -> Markup | str:
    """A ``<time>``: UTC in the page and on hover; console.js shows it in the viewer's zone."""
    if moment is None or moment == "":
        return ""
    iso = utc(moment)
    shown = iso.replace("T", " ").removesuffix("Z") + " UTC"
    return Markup('<time datetime="{0}" title="{1}">{1}</time>').format(iso, shown)


_TITLES = {400: "Check the form:", 401: "Not signed in:", 403: "Not allowed:", 404: "Not found:",
           409: "Already decided:", 422: "Check the form:", 429: "Over a limit:",
           502: "The database refused:", 503: "Unavailable:", 504: "It took too long:"}


def _error_title(error: QuerygateError) -> str:
    return _TITLES.get(error.status, "Something went wrong:")


def _query(base: str, **params: object) -> str:
    """A link with query parameters (None and empty left out; ``from_`` is ``from``)."""
    kept = {k.rstrip("_"): str(v) for k, v in params.items() if v not in (None, "")}
    return base + ("?" + urlencode(kept) if kept else "")


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("querygate.console", "templates"),
        autoescape=True,  # every template, whatever its name: a value is text, never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )
    env.globals.update(when=_when, link=_query, error_title=_error_title, section="")
    return env


def _roles(gateway: Gateway, section: str, key: str) -> frozenset[str]:
    value = gateway.project.section(section).get(key) or []
    return frozenset(v for v in value if isinstance(v, str))


class Console:
    """The console over one gateway: its sessions, templates and shared checks."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.sessions = SessionStore()
        self.env = environment()
        settings = identity.identity_settings(gateway.project)
        self.oidc = settings.oidc if settings.oidc and settings.oidc.client_id else None
        self.readers = _roles(gateway, "audit", "readers")
        self.admins = settings.admins
        self.reviewers = detect_settings(gateway.project).alerts.reviewers
        self._login_key = hmac.new(gateway.project.secret_key, b"console.login",
                                   hashlib.sha256).digest()

    # who is viewing ------------------------------------------------------------------------

    async def viewer(self, request: Request) -> Viewer:
        """The signed-in person, checked against the directory now; SignedOut otherwise."""
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is None:
            raise SignedOut("signin")
        try:
            await refresh_if_due(session)
            who = await self.gateway.authenticate(session.token, function="-",
                                                  client_addr=client_addr(request), client=CLIENT)
        except NotAuthenticated:
            self.sessions.end(session)
            raise SignedOut("ended") from None
        roles = set(who.roles)
        adhoc = any(r in self.gateway.project.roles
                    and self.gateway.project.roles[r].options.get("adhoc") is True for r in roles)
        return Viewer(who, session, bool(self.readers & roles), bool(self.admins & roles),
                      bool(self.reviewers & roles), adhoc)

    # pages -----------------------------------------------------------------------------------

    def render(self, template: str, viewer: Viewer | None, code: int = 200, /,
               **context: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(viewer=viewer, **context)
        return HTMLResponse(html, status_code=code)

    def page(self, handler: Handler, *, need: str | None = None) -> Callable[[Request], Awaitable[Response]]:
        """A signed-in page: ``need`` is audit, admin or alerts; POSTs need the CSRF token."""

        async def endpoint(request: Request) -> Response:
            viewer: Viewer | None = None
            try:
                viewer = await self.viewer(request)
                form: Form = {}
                if request.method == "POST":
                    form = await read_form(request)
                    await self.check_csrf(request, viewer, form)
                await self.require(request, viewer, need)
                return await handler(request, viewer, form)
            except SignedOut as out:
                return self.to_login(request, out.code)
            except NotAuthenticated:  # revoked between the check and the call
                if viewer is not None:
                    self.sessions.end(viewer.session)
                return self.to_login(request, "ended")
            except QuerygateError as exc:
                return self.render("error.html", viewer, exc.status, error=exc)
            except Exception as exc:  # its text may hold data: log the type only
                log.error("unexpected %s in %s", type(exc).__name__, request.url.path)
                return self.render("error.html", viewer, 500, error=QuerygateError(
                    "something went wrong on the server; the gateway log has the details"))

        return endpoint

    async def check_csrf(self, request: Request, viewer: Viewer, form: Form) -> None:
        """A POST must carry the session's token and come from this site; a refusal is audited."""
        if same_origin(request) and viewer.session.csrf_ok(form.get("csrf")):
            return
        await self.record(request, viewer.who, "console.csrf", {"path": request.url.path},
                          decision="denied", error_code=CsrfRefused.code)
        raise CsrfRefused("this form was not sent from a page of this console (its security "
                          "token is missing or stale); reload the page and try again")

    async def require(self, request: Request, viewer: Viewer, need: str | None) -> None:
        """The page's role check; a refusal is audited (``querygate.console.page``)."""
        try:
            self.refuse_unless(viewer, need)
        except PolicyDenied as exc:
            await self.record(request, viewer.who, "console.page", {"path": request.url.path},
                              decision="denied", error_code=exc.code, context={"rule": exc.rule})
            raise

    def refuse_unless(self, viewer: Viewer, need: str | None) -> None:
        if need == "audit" and not viewer.may_read_audit:
            raise PolicyDenied("audit.readers", "this page is for the roles listed in "
                               "audit.readers in querygate.yaml: "
                               + (", ".join(sorted(self.readers)) or "none are listed"))
        if need == "admin" and not viewer.may_admin:
            raise PolicyDenied("identity.admins", "this page is for the roles listed in "
                               "identity.admins in querygate.yaml: "
                               + (", ".join(sorted(self.admins)) or "none are listed"))
        if need == "plan" and not (viewer.may_admin or viewer.may_read_audit):
            raise PolicyDenied("identity.admins", "the plan is for the roles listed in "
                               "identity.admins or audit.readers in querygate.yaml")
        if need == "adhoc" and not viewer.may_adhoc:
            raise PolicyDenied("adhoc not granted", "ad-hoc SQL is for roles with adhoc: true "
                               "in querygate.yaml; none of your roles has it")
        if need == "alerts" and not viewer.may_review_alerts:
            raise PolicyDenied("alerts.reviewers", "alerts are for the roles listed in "
                               "alerts.reviewers in querygate.yaml: "
                               + (", ".join(sorted(self.reviewers)) or "none are listed"))

    def to_login(self, request: Request, code: str) -> Response:
        response = RedirectResponse(_query("/console/login", m=code), status_code=303)
        response.delete_cookie(COOKIE, path="/console")
        return response

    # sign-in forms, before there is a session -------------------------------------------------

    def login_nonce(self, request: Request) -> str:
        return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)

    def login_csrf(self, nonce: str) -> str:
        return hmac.new(self._login_key, nonce.encode(), hashlib.sha256).hexdigest()

    def login_csrf_ok(self, request: Request, sent: str | None) -> bool:
        nonce = request.cookies.get(LOGIN_COOKIE)
        return (nonce is not None and sent is not None and same_origin(request)
                and hmac.compare_digest(sent.encode(), self.login_csrf(nonce).encode()))

    # the console's own audit events --------------------------------------------------------

    async def record(self, request: Request, who: Identity, action: str,
                     parameters: Mapping[str, Any] | None = None,
                     subjects: tuple[tuple[str, str], ...] = (), *, decision: str = "allowed",
                     rows: int = 0, error_code: str | None = None,
                     context: Mapping[str, str] | None = None) -> audit.Receipt:
        """One audit event for a console action (``client: console``), like the API's own."""
        event = audit.AuditEvent(
            occurred_at=dt.datetime.now(dt.UTC), function_name=f"querygate.{action}",
            decision=decision, actor_id=who.user_id, actor_email=who.email,
            actor_roles=who.roles,
            parameters={k: v for k, v in (parameters or {}).items() if v not in (None, "")},
            error_code=error_code, rows_returned=rows, subjects=subjects,
            client_addr=client_addr(request),
            context={**who.context, **(context or {}), "client": CLIENT},
            policy_version=self.gateway.policy_version)
        return await self.gateway.record(event)


def client_addr(request: Request) -> str | None:
    return request.client.host if request.client else None


def same_origin(request: Request) -> bool:
    """A browser names the page a form came from; another site's page is refused."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None  # absent: not a browser's cross-site POST; "null": refused
    own = f"{request.url.scheme}://{request.url.netloc}"
    return origin == own


async def read_form(request: Request) -> dict[str, str]:
    """A urlencoded form, at most ``MAX_FORM_BYTES``; the last value of a repeated field."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise BadParameters("send the form as application/x-www-form-urlencoded")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_FORM_BYTES:
            raise BadParameters(f"the form is larger than {MAX_FORM_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadParameters("the form is not valid UTF-8") from None
    return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}


def parse_subject(value: str | None) -> tuple[str, str] | None:
    kind, sep, ident = (value or "").strip().partition(":")
    if not value:
        return None
    if not sep or not kind or not ident or len(value) > 200:
        raise BadParameters("a subject is TYPE:ID, for example customer:42", parameter="subject")
    return kind, ident


def parse_moment(value: str | None, name: str, *, end: bool = False) -> dt.datetime | None:
    """A date (YYYY-MM-DD, the whole day when ``end``) or an ISO 8601 timestamp, as UTC."""
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise BadParameters(f"{name}: write a date as YYYY-MM-DD", parameter=name) from None
    if end and len(value) == 10:
        moment += dt.timedelta(days=1)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def message(code: str | None) -> str | None:
    return MESSAGES.get(code or "")


