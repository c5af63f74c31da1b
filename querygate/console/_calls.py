"""For engineers: the functions they may call, a typed form per function, results, CSV, SQL.

Every call goes through ``Gateway.call`` (ad-hoc SQL through ``Gateway.sql``) with
``client="console"``: the same identity check, plan, masks, limits, detectors and audit event as
any other front door. The CSV download runs the call again, as its own audited call, rather
than keeping a result in the server: what was downloaded is exactly what its event records.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from querygate.catalog import INT4, INT8, MAX_ARRAY_ITEMS, Parameter
from querygate.console._web import CLIENT, Console, Form, Viewer, client_addr
from querygate.errors import NotAuthenticated, NotFound, QuerygateError
from querygate.gateway import CallResult

_HINTS = {
    "int": "a whole number", "bigint": "a whole number", "numeric": "a decimal number",
    "text": "text", "bool": "yes or no", "date": "a date", "timestamptz": "a date and time, UTC",
    "uuid": "a UUID, e.g. 123e4567-e89b-12d3-a456-426614174000",
}


@dataclass(frozen=True)
class Field:
    """One parameter as a form input: its HTML type and attributes, from its declared type."""

    name: str
    type: str
    input: str  # text, number, date, datetime-local, select
    hint: str
    attrs: dict[str, str]

    @property
    def id(self) -> str:
        return f"p-{self.name}"


def field_for(param: Parameter, max_chars: int) -> Field:
    scalar = param.type.removesuffix("[]")
    hint = _HINTS[scalar]
    if param.is_array:
        return Field(param.name, param.type, "text",
                     f"{hint}s, separated by commas (at most {MAX_ARRAY_ITEMS})", {})
    if scalar in ("int", "bigint"):
        low, high = INT4 if scalar == "int" else INT8
        return Field(param.name, param.type, "number", hint,
                     {"step": "1", "min": str(low), "max": str(high), "inputmode": "numeric"})
    if scalar == "numeric":
        return Field(param.name, param.type, "text", hint,
                     {"inputmode": "decimal", "pattern": r"-?[0-9]+(\.[0-9]+)?"})
    if scalar == "bool":
        return Field(param.name, param.type, "select", hint, {})
    if scalar == "date":
        return Field(param.name, param.type, "date", hint, {})
    if scalar == "timestamptz":
        return Field(param.name, param.type, "datetime-local", hint, {"step": "1"})
    if scalar == "uuid":
        return Field(param.name, param.type, "text", hint, {"maxlength": "36", "spellcheck": "false"})
    return Field(param.name, param.type, "text", hint, {"maxlength": str(max_chars)})


def form_values(params: tuple[Parameter, ...], form: Form) -> dict[str, object]:
    """The submitted form as call parameters; the gateway validates them like any caller's."""
    values: dict[str, object] = {}
    for p in params:
        raw = form.get(f"p.{p.name}", "")
        if raw == "" and p.type.removesuffix("[]") != "text":
            continue  # missing: the gateway says which parameter is needed
        if p.is_array:
            values[p.name] = [item.strip() for item in raw.split(",") if item.strip()]
        elif p.type == "timestamptz" and raw and not _has_zone(raw):
            values[p.name] = raw + ("Z" if raw.count(":") == 2 else ":00Z")
        else:
            values[p.name] = raw
    return values


def _has_zone(text: str) -> bool:
    return text.endswith("Z") or "+" in text[10:] or "-" in text[10:]


def cell(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


@dataclass(frozen=True)
class Shown:
    """A result as the page shows it: each column with the rule that masked it, if any."""

    columns: list[tuple[str, str | None]]
    rows: list[list[str]]
    omitted: list[str]
    truncated: bool
    audit_id: str
    seq: int
    hash: str


def shown(result: CallResult) -> Shown:
    fields = result.fields
    columns = [(c, fields.get(c)) for c in result.columns]
    return Shown(columns, [[cell(v) for v in row] for row in result.rows],
                 sorted(c for c, d in fields.items() if d == "omit"), result.truncated,
                 result.receipt.event_id, result.receipt.seq, result.receipt.hash)


def as_csv(result: CallResult) -> str:
    """The rows as shown; a masked column's header names its rule, e.g. ``iban (mask.last4)``."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([f"{c} ({r})" if r else c for c, r in shown(result).columns])
    writer.writerows([["" if v is None else cell(v) for v in row] for row in result.rows])
    return out.getvalue()


def routes(console: Console) -> list[Route]:
    gateway = console.gateway
    max_chars = gateway.project.settings.max_param_chars

    def function_or_404(viewer: Viewer, name: str) -> Any:
        fn = gateway.functions.get(name)
        if fn is None or not gateway.plan_for(name, viewer.who.roles).allowed:
            raise NotFound(f"there is no function named {name[:80]!r} that you may call")
        return fn

    async def listing(request: Request, viewer: Viewer, form: Form) -> Response:
        functions = [(fn, gateway.plan_for(fn.name, viewer.who.roles).fields)
                     for fn in sorted(gateway.callable_by(viewer.who), key=lambda f: f.name)]
        return console.render("functions.html", viewer, functions=functions)

    async def function(request: Request, viewer: Viewer, form: Form) -> Response:
        fn = function_or_404(viewer, request.path_params["name"])
        fields = [field_for(p, max_chars) for p in fn.function.parameters]
        context: dict[str, Any] = {"fn": fn, "fields": fields, "form": form, "result": None,
                                   "error": None,
                                   "policy": gateway.plan_for(fn.name, viewer.who.roles).fields}
        if request.method == "GET":
            return console.render("function.html", viewer, **context)
        try:
            result = await gateway.call(viewer.session.token, fn.name,
                                        form_values(fn.function.parameters, form),
                                        form.get("reason") or None, client_addr(request),
                                        client=CLIENT)
        except NotAuthenticated:
            raise  # revoked since the page loaded: signed out
        except QuerygateError as exc:
            return console.render("function.html", viewer, exc.status, **{**context, "error": exc})
        return console.render("function.html", viewer, **{**context, "result": shown(result)})

    async def download(request: Request, viewer: Viewer, form: Form) -> Response:
        fn = function_or_404(viewer, request.path_params["name"])
        try:
            result = await gateway.call(viewer.session.token, fn.name,
                                        form_values(fn.function.parameters, form),
                                        form.get("reason") or None, client_addr(request),
                                        client=CLIENT)
        except NotAuthenticated:
            raise
        except QuerygateError as exc:
            fields = [field_for(p, max_chars) for p in fn.function.parameters]
            return console.render("function.html", viewer, exc.status, fn=fn, fields=fields,
                                  form=form, result=None, error=exc,
                                  policy=gateway.plan_for(fn.name, viewer.who.roles).fields)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        return Response(as_csv(result), media_type="text/csv; charset=utf-8", headers={
            "content-disposition": f'attachment; filename="{fn.name}-{stamp}.csv"',
            "x-querygate-audit-id": result.receipt.event_id})

    async def adhoc(request: Request, viewer: Viewer, form: Form) -> Response:
        if request.method == "GET":
            return console.render("sql.html", viewer, form=form, result=None, error=None)
        try:
            result = await gateway.sql(viewer.session.token, form.get("sql", ""),
                                       form.get("reason") or None, client_addr(request),
                                       client=CLIENT)
        except NotAuthenticated:
            raise
        except QuerygateError as exc:
            return console.render("sql.html", viewer, exc.status, form=form, result=None,
                                  error=exc)
        return console.render("sql.html", viewer, form=form, result=shown(result), error=None)

    return [
        Route("/functions", console.page(listing), methods=["GET"]),
        Route("/functions/{name}", console.page(function), methods=["GET", "POST"]),
        Route("/functions/{name}/csv", console.page(download), methods=["POST"]),
        Route("/sql", console.page(adhoc, need="adhoc"), methods=["GET", "POST"]),
    ]
