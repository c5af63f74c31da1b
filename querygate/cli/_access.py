"""``access``, ``break-glass`` and ``login``: elevation and sign-in, as yourself.

These talk to a running gateway with your token (``--token``, ``$QUERYGATE_TOKEN``
or the one ``querygate login`` cached), so every step is yours in the audit log.
"""

from __future__ import annotations

import os
import sys
import webbrowser
from pathlib import Path
from typing import Any

import click
import httpx
import orjson

from querygate import identity
from querygate.cli._common import command_help, fail, load, project_option
from querygate.errors import QuerygateError

_token = click.option("--token", default=None,
                      help="Your token (default: $QUERYGATE_TOKEN, then `querygate login`'s).")
_url = click.option("--url", default="http://127.0.0.1:8080", show_default=True,
                    help="The gateway's address.")
_json = click.option("--json", "as_json", is_flag=True, help="Print the raw JSON response.")
_functions = click.option("--function", "functions", multiple=True,
                          help="Bind the grant to this function (repeatable).")
_params = click.option("--param", "params", multiple=True,
                       help="Bind the grant to NAME=VALUE of those functions (repeatable).")


def _pairs(pairs: tuple[str, ...]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            fail(f"--param {pair!r}: write NAME=VALUE")
        values[name] = value
    return values


def _post(url: str, path: str, token: str | None, body: dict[str, Any] | None,
          method: str = "POST") -> dict[str, Any]:
    token = token or os.environ.get("QUERYGATE_TOKEN") or identity.cached_token()
    if not token:
        fail("no token: pass --token, set QUERYGATE_TOKEN or run `querygate login`")
    try:
        response = httpx.request(method, f"{url.rstrip('/')}{path}", json=body, timeout=30,
                                 headers={"Authorization": f"Bearer {token}"})
        payload: dict[str, Any] = response.json()
    except httpx.HTTPError as exc:
        fail(f"cannot reach the gateway at {url}: {type(exc).__name__}; is it running?")
        raise
    except ValueError:
        fail(f"the gateway answered {response.status_code} without JSON")
        raise
    if response.status_code >= 400:
        error = payload.get("error", {})
        fail(f"{response.status_code} {error.get('code')}: {error.get('message')}")
    return payload


def _show(payload: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(orjson.dumps(payload).decode() + "\n")
        return
    request = payload["request"]
    window = (f", until {request['expires_at']}" if request.get("expires_at") else "")
    scope = ""
    if request.get("functions"):
        scope = f"; only {', '.join(request['functions'])}"
        scope += "".join(f" {k}={v}" for k, v in (request.get("params") or {}).items())
    click.echo(f"{request['id']}  {request['status']}  {request['email']} → {request['role']} "
               f"for {request['duration_s']} s{window}{scope}")
    click.echo(f"  reason: {request['reason']}")
    if request.get("decided_by"):
        click.echo(f"  decided by {request['decided_by']}"
                   + (f": {request['decision_note']}" if request.get("decision_note") else ""))
    if payload.get("audit_id"):
        click.echo(f"  audit event {payload['audit_id']}")


@click.group(help=command_help(
    "Just-in-time elevation: ask for a role for a while; an approver says yes or no.",
    "querygate access request --role billing --for 2h --reason INC-4711"))
def access() -> None: ...


@access.command("request", help=command_help(
    "Ask for a role for a while, with a reason. Holders of the role's approvers decide.",
    "querygate access request --role billing --for 2h --reason INC-4711 "
    "--function get_customer_by_id --param customer_id=42"))
@click.option("--role", required=True, help="The role you need.")
@click.option("--for", "duration", required=True, help="How long: 30m, 2h, 1d.")
@click.option("--reason", required=True, help="Why (a ticket or incident id).")
@_functions
@_params
@_token
@_url
@_json
def access_request(role: str, duration: str, reason: str, functions: tuple[str, ...],
                   params: tuple[str, ...], token: str | None, url: str, as_json: bool) -> None:
    body: dict[str, Any] = {"role": role, "duration": duration, "reason": reason}
    if functions:
        body["functions"] = list(functions)
    if params:
        body["params"] = _pairs(params)
    _show(_post(url, "/v1/access/requests", token, body), as_json)


def _decide(verb: str, request_id: str, note: str | None, functions: tuple[str, ...],
            params: tuple[str, ...], token: str | None, url: str, as_json: bool) -> None:
    body: dict[str, Any] = {"note": note} if note else {}
    if functions:
        body["functions"] = list(functions)
    if params:
        body["params"] = _pairs(params)
    _show(_post(url, f"/v1/access/requests/{request_id}/{verb}", token, body), as_json)


@access.command("approve", help=command_help(
    "Approve someone else's request; the grant starts now. --function/--param bind it.",
    "querygate access approve acc_1f2e3d4c5b6a7980 --note 'ok for INC-4711'"))
@click.argument("request_id")
@click.option("--note", default=None, help="A note kept with the decision.")
@_functions
@_params
@_token
@_url
@_json
def access_approve(request_id: str, note: str | None, functions: tuple[str, ...],
                   params: tuple[str, ...], token: str | None, url: str, as_json: bool) -> None:
    _decide("approve", request_id, note, functions, params, token, url, as_json)


@access.command("deny", help=command_help("Deny someone else's request.",
                                          "querygate access deny acc_1f2e3d4c5b6a7980 --note 'no'"))
@click.argument("request_id")
@click.option("--note", default=None, help="A note kept with the decision.")
@_token
@_url
@_json
def access_deny(request_id: str, note: str | None, token: str | None, url: str,
                as_json: bool) -> None:
    _decide("deny", request_id, note, (), (), token, url, as_json)


@access.command("cancel", help=command_help(
    "Withdraw your pending request, or end your grant early.",
    "querygate access cancel acc_1f2e3d4c5b6a7980"))
@click.argument("request_id")
@_token
@_url
@_json
def access_cancel(request_id: str, token: str | None, url: str, as_json: bool) -> None:
    _show(_post(url, f"/v1/access/requests/{request_id}/cancel", token, {}), as_json)


@access.command("list", help=command_help(
    "Your requests, and the pending ones you may decide.", "querygate access list"))
@_token
@_url
@_json
def access_list(token: str | None, url: str, as_json: bool) -> None:
    payload = _post(url, "/v1/access/requests", token, None, method="GET")
    if as_json:
        sys.stdout.write(orjson.dumps(payload).decode() + "\n")
        return
    for request in payload["requests"]:
        _show({"request": request}, False)
    if not payload["requests"]:
        click.echo("no access requests")


@click.command("break-glass", help=command_help(
    "Emergency: give yourself a role declared break_glass, now, for a short while. The reason "
    "is mandatory, security is alerted at once, and every call you make is flagged.",
    "querygate break-glass --role admin --reason 'INC-5000 payments down'"))
@click.option("--role", required=True, help="A role declared break_glass in querygate.yaml.")
@click.option("--reason", required=True, help="Why (an incident id and a sentence).")
@click.option("--for", "duration", default=None, help="How long (default and cap: the setting).")
@_token
@_url
@_json
def break_glass(role: str, reason: str, duration: str | None, token: str | None, url: str,
                as_json: bool) -> None:
    body: dict[str, Any] = {"role": role, "reason": reason}
    if duration:
        body["duration"] = duration
    payload = _post(url, "/v1/access/break-glass", token, body)
    if not as_json:
        click.echo("BREAK-GLASS granted; security has been alerted and every call is flagged.",
                   err=True)
    _show(payload, as_json)


@click.command(help=command_help(
    "Sign in at your identity provider and cache the token for your user (device code by "
    "default; --browser for the browser flow). `access` and `break-glass` use it.",
    "querygate login --project ./gateway"))
@click.option("--issuer", default=None, help="The issuer URL (default: identity.oidc.issuer).")
@click.option("--client-id", default=None, help="A public client (default: identity.oidc.client_id).")
@click.option("--browser", is_flag=True, help="Sign in through the browser (PKCE) instead.")
@click.option("--print-token", is_flag=True, help="Also print the access token (last line).")
@project_option
def login(issuer: str | None, client_id: str | None, browser: bool, print_token: bool,
          project_dir: Path) -> None:
    oidc = None
    if issuer is None or client_id is None:
        try:
            oidc = identity.oidc_settings(load(project_dir))
        except QuerygateError as exc:
            fail(exc.message)
        if oidc is None:
            fail("no identity.oidc section in querygate.yaml; pass --issuer and --client-id")
    issuer = issuer or (oidc.issuer if oidc else None)
    client_id = client_id or (oidc.client_id if oidc else None)
    if not issuer or not client_id:
        fail("set identity.oidc.client_id (a public client for the CLI) or pass --client-id")
    assert issuer is not None and client_id is not None
    scopes = oidc.scopes if oidc else "openid email profile"
    try:
        tokens = (identity.browser_login(issuer, client_id, scopes, open_browser=webbrowser.open)
                  if browser else identity.device_login(issuer, client_id, scopes,
                                                        echo=click.echo))
    except (httpx.HTTPError, QuerygateError) as exc:
        fail(f"sign-in failed: {exc}")
        raise
    path = identity.save_login(tokens)
    click.echo(f"signed in at {issuer}; token cached in {path}")
    if print_token:
        click.echo(tokens.access_token)
