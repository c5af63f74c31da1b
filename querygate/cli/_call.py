"""``call``: call a function on a running gateway, as yourself."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

import click
import httpx
import orjson

from querygate import identity
from querygate.cli._common import command_help, fail


def _params(pairs: tuple[str, ...], json_pairs: tuple[str, ...]) -> dict[str, object]:
    values: dict[str, object] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            fail(f"--param {pair!r}: write NAME=VALUE")
        values[name] = value
    for pair in json_pairs:
        name, sep, value = pair.partition("=")
        try:
            values[name] = orjson.loads(value)
        except orjson.JSONDecodeError:
            fail(f"--param-json {name}: the value is not JSON")
    return values


def _table(body: dict[str, object]) -> str:
    columns = [str(c) for c in body.get("columns", [])]  # type: ignore[attr-defined]
    rows = [["" if v is None else str(v) for v in row] for row in body.get("rows", [])]  # type: ignore[attr-defined]
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def _send(url: str, path: str, body: Mapping[str, object], token: str | None,
          as_json: bool) -> None:
    """POST to the gateway as the caller; print the rows as a table (or the raw JSON)."""
    token = token or os.environ.get("QUERYGATE_TOKEN") or identity.cached_token()
    if not token:
        fail("no token: pass --token, set QUERYGATE_TOKEN (`querygate tokens issue EMAIL`), "
             "or sign in with `querygate login`")
    try:
        response = httpx.post(f"{url.rstrip('/')}{path}", json=body,
                              headers={"Authorization": f"Bearer {token}",
                                       "X-Querygate-Client": "cli"}, timeout=60)
    except httpx.HTTPError as exc:
        fail(f"cannot reach the gateway at {url}: {type(exc).__name__}; is it running?")
        return
    try:
        payload = response.json()
    except ValueError:
        fail(f"the gateway answered {response.status_code} without JSON")
        return
    if response.status_code != 200:
        error = payload.get("error", {})
        fail(f"{response.status_code} {error.get('code')}: {error.get('message')}")
    if as_json:
        sys.stdout.write(orjson.dumps(payload).decode() + "\n")
        return
    click.echo(_table(payload))
    for column, decision in payload.get("fields", {}).items():
        click.echo(f"  {column}: {decision}", err=True)
    click.echo(f"{len(payload['rows'])} row(s); audit event {payload['audit_id']}"
               f"{' (truncated)' if payload.get('truncated') else ''}", err=True)


_reason = click.option("--reason", default=None, help="Why you need this data (a ticket id).")
_token = click.option("--token", default=None, help="Your API token (default: $QUERYGATE_TOKEN).")
_url = click.option("--url", default="http://127.0.0.1:8080", show_default=True,
                    help="The gateway's address.")
_json = click.option("--json", "as_json", is_flag=True, help="Print the raw JSON response.")


@click.command(help=command_help(
    "Call a function through a running gateway with your token (or $QUERYGATE_TOKEN).",
    "querygate call get_customer_by_id --param customer_id=42 --reason TICKET-1042"))
@click.argument("function")
@click.option("--param", "params", multiple=True, help="NAME=VALUE (repeatable).")
@click.option("--param-json", "json_params", multiple=True,
              help="NAME=JSON for arrays and exact types, e.g. ids='[1,2]'.")
@_reason
@_token
@_url
@_json
def call(function: str, params: tuple[str, ...], json_params: tuple[str, ...],
         reason: str | None, token: str | None, url: str, as_json: bool) -> None:
    body = {"params": _params(params, json_params), "reason": reason}
    _send(url, f"/v1/call/{function}", body, token, as_json)


@click.command(help=command_help(
    "Run one read-only SQL statement through the gateway (roles with adhoc: true): the same "
    "lineage analysis, masks and audit as a named function.",
    "querygate sql \"SELECT id, iban FROM customers WHERE id = 42\" --reason TICKET-1042"))
@click.argument("statement")
@_reason
@_token
@_url
@_json
def sql(statement: str, reason: str | None, token: str | None, url: str, as_json: bool) -> None:
    _send(url, "/v1/sql", {"sql": statement, "reason": reason}, token, as_json)
