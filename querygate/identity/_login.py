"""``querygate login``: sign in at the identity provider and keep the token for this user.

Two OAuth 2.0 flows for a public client (no secret on laptops): the device
authorization grant (RFC 8628: a code to type in any browser, fit for SSH
sessions) and the authorization code grant with PKCE (RFC 7636) and a
loopback redirect (RFC 8252). Tokens are cached in the user's config folder,
readable by them only, and refreshed with the refresh token when they expire.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import platformdirs

from querygate.errors import NotAuthenticated
from querygate.identity._settings import secure_url

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
ENV_CREDENTIALS = "QUERYGATE_CREDENTIALS"


@dataclass(frozen=True)
class TokenSet:
    issuer: str
    client_id: str
    access_token: str
    expires_at: float  # seconds since the epoch
    refresh_token: str | None = None


def credentials_path() -> Path:
    """Where tokens are cached: $QUERYGATE_CREDENTIALS, or the user's config folder."""
    override = os.environ.get(ENV_CREDENTIALS)
    return Path(override) if override else platformdirs.user_config_path("querygate") / "credentials.json"


def _read_all() -> dict[str, Any]:
    try:
        data = json.loads(credentials_path().read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save(tokens: TokenSet) -> Path:
    """Cache ``tokens`` for their issuer; the file is readable by this user only."""
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = _read_all()
    data[tokens.issuer] = asdict(tokens)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    temporary.replace(path)
    return path


def cached_token(issuer: str | None = None, *, timeout: float = 10) -> str | None:
    """A cached access token still valid for a minute, refreshed if need be; None otherwise."""
    entries = _read_all()
    entry = entries.get(issuer) if issuer else (next(iter(entries.values())) if entries else None)
    if not isinstance(entry, dict):
        return None
    tokens = TokenSet(**entry)
    if tokens.expires_at - 60 > time.time():
        return tokens.access_token
    if not tokens.refresh_token:
        return None
    try:
        fresh = token_request(discover(tokens.issuer, timeout)["token_endpoint"], {
            "grant_type": "refresh_token", "refresh_token": tokens.refresh_token,
            "client_id": tokens.client_id}, tokens, timeout)
    except (NotAuthenticated, httpx.HTTPError):
        return None
    save(fresh)
    return fresh.access_token


def discover(issuer: str, timeout: float = 10) -> dict[str, Any]:
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    document = httpx.get(url, timeout=timeout).raise_for_status().json()
    if not isinstance(document, dict) or document.get("issuer") != issuer:
        raise NotAuthenticated(f"{url} does not describe the issuer {issuer}")
    return document


def endpoint(document: dict[str, Any], name: str) -> str:
    url = document.get(name)
    if not isinstance(url, str) or not secure_url(url):
        raise NotAuthenticated(f"the identity provider has no usable {name}")
    return url


def token_request(url: str, form: dict[str, str], base: TokenSet | None, timeout: float,
                   issuer: str = "", client_id: str = "") -> TokenSet:
    response = httpx.post(url, data=form, timeout=timeout, headers={"Accept": "application/json"})
    body = response.json() if response.content else {}
    if response.status_code != 200 or "access_token" not in body:
        raise NotAuthenticated(f"the identity provider refused: {body.get('error', response.status_code)}")
    fresh = _token_set(body, base.issuer if base else issuer, base.client_id if base else client_id)
    if fresh.refresh_token is None and base is not None:  # the provider kept the refresh token
        return TokenSet(fresh.issuer, fresh.client_id, fresh.access_token, fresh.expires_at,
                        base.refresh_token)
    return fresh


def device_login(issuer: str, client_id: str, scopes: str, *, echo: Callable[[str], None],
                 sleep: Callable[[float], None] = time.sleep, timeout: float = 10) -> TokenSet:
    """RFC 8628: show a code and a URL, then poll until the person approves (or it lapses)."""
    document = discover(issuer, timeout)
    grant = httpx.post(endpoint(document, "device_authorization_endpoint"),
                       data={"client_id": client_id, "scope": scopes}, timeout=timeout)
    grant.raise_for_status()
    device = grant.json()
    echo(f"To sign in, open {device.get('verification_uri_complete') or device['verification_uri']}")
    echo(f"and enter the code {device['user_code']} (it expires in {device.get('expires_in', 600)} s).")
    interval, deadline = float(device.get("interval", 5)), time.monotonic() + float(
        device.get("expires_in", 600))
    token_url = endpoint(document, "token_endpoint")
    while time.monotonic() < deadline:
        response = httpx.post(token_url, timeout=timeout, data={
            "grant_type": DEVICE_GRANT, "device_code": device["device_code"], "client_id": client_id})
        body = response.json()
        error = body.get("error")
        if response.status_code == 200 and "access_token" in body:
            return _token_set(body, issuer, client_id)
        if error == "slow_down":
            interval += 5
        elif error != "authorization_pending":
            raise NotAuthenticated(f"sign-in did not complete: {error or response.status_code}")
        sleep(interval)
    raise NotAuthenticated("the sign-in code expired; run `querygate login` again")


def _token_set(body: dict[str, Any], issuer: str, client_id: str) -> TokenSet:
    return TokenSet(issuer, client_id, str(body["access_token"]),
                    time.time() + float(body.get("expires_in", 300)), body.get("refresh_token"))


def browser_login(issuer: str, client_id: str, scopes: str, *,
                  open_browser: Callable[[str], object], timeout: float = 120) -> TokenSet:
    """RFC 7636 + RFC 8252: the browser signs in and comes back to a one-shot loopback server."""
    document = discover(issuer, 10)
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    state = secrets.token_urlsafe(16)
    server = _CallbackServer()
    redirect = f"http://127.0.0.1:{server.port}/callback"
    open_browser(endpoint(document, "authorization_endpoint") + "?" + urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect,
        "scope": scopes, "state": state, "code_challenge": challenge.decode(),
        "code_challenge_method": "S256"}))
    params = server.wait(timeout)
    if params.get("state") != state or "code" not in params:
        raise NotAuthenticated(f"sign-in did not complete: {params.get('error', 'no code returned')}")
    return token_request(endpoint(document, "token_endpoint"), {
        "grant_type": "authorization_code", "code": params["code"], "redirect_uri": redirect,
        "client_id": client_id, "code_verifier": verifier}, None, 10, issuer, client_id)


class _CallbackServer:
    """A loopback HTTP server that answers one redirect and hands back its query."""

    def __init__(self) -> None:
        self.result: dict[str, str] = {}
        self.done = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                outer.result = {k: v[0] for k, v in query.items()}
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.end_headers()
                self.wfile.write(b"querygate: signed in; you can close this window.\n")
                outer.done.set()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, timeout: float) -> dict[str, str]:
        try:
            if not self.done.wait(timeout):
                raise NotAuthenticated("no answer from the browser; run `querygate login` again")
            return self.result
        finally:
            self.httpd.shutdown()
            self.httpd.server_close()
