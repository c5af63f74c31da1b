"""One statement of a session: what it is, and its answer, every one through the gateway.

In order: a session statement (BEGIN, SET, SHOW, ...), a call of a named function
(``Gateway.call``), ``querygate.functions``, a catalog query (answered from querygate's own
data), a constant ``SELECT`` (``version()``, ``current_user``, ``1``), and, for roles with
``adhoc: true``, ad-hoc SQL (``Gateway.sql``). Everything else is refused with 42501.
Every statement, even ``BEGIN``, first checks the session's token again, so a revocation
holds on the next statement of an open session.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from querygate.catalog import Function
from querygate.errors import BadParameters, QuerygateError
from querygate.gateway import CallResult, Gateway
from querygate.identity import Identity
from querygate.pgwire import _catalog as catalog
from querygate.pgwire import _errors as err
from querygate.pgwire import _sql as sql
from querygate.pgwire import _types as t
from querygate.pgwire._codec import Field

SERVER_VERSION = "16.0 (querygate)"
GONE_CHECK_S = 0.2
FIELDS_CACHED = 1024
REASON_SETTING = "querygate.reason"
DEFAULTS = {"server_version": SERVER_VERSION, "server_version_num": "160000",
            "server_encoding": "UTF8", "client_encoding": "UTF8", "datestyle": "ISO, MDY",
            "intervalstyle": "postgres", "integer_datetimes": "on",
            "standard_conforming_strings": "on", "timezone": "UTC", "is_superuser": "off",
            "transaction_isolation": "read committed", "transaction_read_only": "on",
            "default_transaction_read_only": "on", "search_path": "public",
            "max_identifier_length": "63", "extra_float_digits": "1", "lc_collate": "C",
            "lc_ctype": "C", "max_index_keys": "32", "statement_timeout": "0",
            "lock_timeout": "0", "idle_in_transaction_session_timeout": "0",
            "bytea_output": "hex", "escape_string_warning": "on", "ssl": "off"}
REPORTED = {"application_name": "application_name", "client_encoding": "client_encoding",
            "datestyle": "DateStyle", "timezone": "TimeZone", "intervalstyle": "IntervalStyle",
            "standard_conforming_strings": "standard_conforming_strings",
            "is_superuser": "is_superuser", "integer_datetimes": "integer_datetimes"}
# settings a client may change only to what querygate already speaks
_FIXED = {"client_encoding": ("utf8", "utf-8", "unicode"), "standard_conforming_strings": ("on",),
          "integer_datetimes": ("on",)}


@dataclass
class Outcome:
    """A statement's answer: columns (None: no rows), rows, a command tag, notices."""

    tag: str
    fields: list[Field] | None = None
    rows: list[list[object]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    reported: list[tuple[str, str]] = field(default_factory=list)  # ParameterStatus to send
    empty: bool = False


@dataclass(frozen=True)
class Statement:
    """A parsed statement: its kind, with what its kind needs."""

    text: str
    kind: str  # empty, session, call, functions, catalog, constant, other
    tokens: tuple[sql.Token, ...] = ()
    session: sql.Session | None = None
    call: sql.Call | None = None
    constant: tuple[tuple[str, str], ...] | None = None  # (column, expression)

    @property
    def param_count(self) -> int:
        if self.call is not None:
            return self.call.max_param
        return max((int(tk.text[1:]) for tk in self.tokens if tk.kind == "param"), default=0)


def classify(text: str, tokens: Sequence[sql.Token], functions: Mapping[str, object]) -> Statement:
    """What a statement is, from its tokens (no database involved)."""
    words = tuple(tokens)
    if not words:
        return Statement(text, "empty")
    session = sql.parse_session(list(words))
    if session is not None:
        return Statement(text, "session", words, session=session)
    call = sql.parse_call(list(words))
    if call is not None and call.function in functions:
        return Statement(text, "call", words, call=call)
    if catalog.is_functions_view(text):
        return Statement(text, "functions", words)
    if catalog.is_type_introspection(text):
        return Statement(text, "types", words)
    constant = _constant(list(words))
    if constant is not None:
        return Statement(text, "constant", words, constant=constant)
    if catalog.is_catalog_query(text):
        return Statement(text, "catalog", words)
    return Statement(text, "other", words, call=call)


_CONSTANT_FUNCTIONS = {"version", "current_schema", "current_database", "current_user",
                       "session_user", "user", "current_catalog", "pg_backend_pid",
                       "current_setting", "inet_server_port", "txid_current", "set_config"}


def _constant(tokens: list[sql.Token]) -> tuple[tuple[str, str], ...] | None:
    """``SELECT version(), current_user, 1 AS one``: each item (name, expression) or None."""
    if not tokens or not tokens[0].is_("select"):
        return None
    items: list[tuple[str, str]] = []
    i = 1
    while i < len(tokens):
        token = tokens[i]
        if token.kind == "ident" and token.word == "pg_catalog" and i + 2 < len(tokens) \
                and tokens[i + 1].is_("."):
            i += 2
            token = tokens[i]
        if token.kind in ("number", "string"):
            value = sql.string_value(token) if token.kind == "string" else token.text
            expression, name, i = f"{token.kind}:{value}", "?column?", i + 1
        elif token.kind == "ident" and token.word in _CONSTANT_FUNCTIONS:
            name, i = token.word, i + 1
            expression = f"fn:{name}"
            if i < len(tokens) and tokens[i].is_("("):
                args = []
                i += 1
                while i < len(tokens) and not tokens[i].is_(")"):
                    if tokens[i].kind == "string":
                        args.append(sql.string_value(tokens[i]))
                    elif tokens[i].is_("true", "false") or tokens[i].kind == "number":
                        args.append(tokens[i].text.lower())
                    elif not tokens[i].is_(","):
                        return None
                    i += 1
                i += 1
                if args:
                    expression += ":" + "\x1f".join(args)
        else:
            return None
        if i < len(tokens) and tokens[i].is_("::"):
            i += 2  # a cast to a plain type name: the value stays what it is
        if i < len(tokens) and tokens[i].is_("as"):
            i += 1
        if i < len(tokens) and tokens[i].kind in ("ident", "qident") and not tokens[i].is_(","):
            name, i = tokens[i].word, i + 1
        items.append((name, expression))
        if i < len(tokens):
            if not tokens[i].is_(","):
                return None
            i += 1
    return tuple(items) if items else None


class Runner:
    """Answers the statements of one session."""

    def __init__(self, gateway: Gateway, view: catalog.GatewayView, *, token: str,
                 identity: Identity, database: str, client_addr: str | None,
                 settings: dict[str, str], pid: int) -> None:
        self.gateway, self.view = gateway, view
        self.token, self.identity, self.database = token, identity, database
        self.client_addr, self.settings, self.pid = client_addr, settings, pid
        self.reason: str | None = None
        self.on_deallocate: Callable[[str | None], None] = lambda _name: None
        self.client_gone: Callable[[], bool] = lambda: False  # the socket was closed by the client

    @property
    def application(self) -> str | None:
        return self.settings.get("application_name") or None

    async def check_identity(self) -> Identity:
        """The session's token, checked against the directory now (revocation holds here)."""
        try:
            who = await self.gateway.authenticate(self.token, function="-",
                                                  client_addr=self.client_addr,
                                                  client="postgres", application=self.application)
        except QuerygateError as exc:
            raise err.from_querygate(exc) from None
        self.identity = who
        return who

    # ---- what a statement's result looks like, before it runs ------------------------------

    def describe(self, statement: Statement) -> list[Field] | None:
        """RowDescription fields known without running the statement (None: none)."""
        if statement.kind == "call" and statement.call is not None:
            plan_ = self.gateway.plan_for(statement.call.function, self.identity.roles)
            columns = catalog.result_columns(plan_, self.view.types.get(statement.call.function, ()))
            fields = [_field(name, oid) for name, oid in columns]
            return [fields[i] for i in _projected(statement.call, [n for n, _ in columns])]
        if statement.kind == "session" and statement.session and statement.session.kind == "show":
            return [_field(statement.session.name or "setting", t.TEXT)]
        return None

    def param_oids(self, statement: Statement, declared: Sequence[int]) -> list[int]:
        """The parameter types of a statement: the client's, else the function's declared ones."""
        count = max(statement.param_count, len(declared))
        oids = [declared[i] if i < len(declared) and declared[i] else t.TEXT for i in range(count)]
        if statement.kind == "types" and count:
            oids[0] = declared[0] if declared and declared[0] else t.ARRAY_OF[t.OID]
        call = statement.call
        if statement.kind == "call" and call is not None:
            function = self.gateway.functions[call.function].function
            for index, oid in _declared_params(call, function).items():
                if 0 < index <= count and not (index <= len(declared) and declared[index - 1]):
                    oids[index - 1] = oid
        return oids

    # ---- running ---------------------------------------------------------------------------

    async def run(self, statement: Statement, params: Sequence[object] = (),
                  track: Callable[[asyncio.Task[Any]], None] | None = None) -> Outcome:
        """The statement's outcome; a refusal as a WireError with its SQLSTATE."""
        if statement.kind == "empty":
            await self.check_identity()
            return Outcome("", empty=True)
        if statement.kind == "call" and statement.call is not None:
            return await self._call(statement.call, params, track)
        if statement.kind == "other" and self._adhoc_allowed() \
                and not catalog.is_catalog_query(statement.text):
            return await self._adhoc(statement.text, track)
        who = await self.check_identity()
        if statement.kind == "session" and statement.session is not None:
            return self._session(statement.session)
        if statement.kind == "functions":
            return _rows(catalog.functions_view(self.view, who))
        if statement.kind == "types":
            wanted = params[0] if params and isinstance(params[0], list) else []
            return _rows(catalog.type_introspection([int(str(o)) for o in wanted
                                                     if str(o).isdigit()]))
        if statement.kind == "catalog":
            try:
                return _rows(catalog.answer(self.view, who, self.database, statement.text, params))
            except catalog.CatalogError as exc:
                raise err.WireError(err.FEATURE_NOT_SUPPORTED, str(exc)) from None
        if statement.kind == "constant" and statement.constant is not None:
            return self._constant(statement.constant)
        call = statement.call
        if call is not None:
            raise err.WireError(err.UNDEFINED_FUNCTION, f"function {call.function[:63]} does not "
                                "exist or is not yours to call",
                                hint="SELECT * FROM querygate.functions lists what you may call")
        raise err.WireError(err.INSUFFICIENT_PRIVILEGE,
                            "querygate accepts calls of your functions, e.g. SELECT * FROM "
                            "get_customer_by_id(42); ad-hoc SQL needs a role with adhoc: true",
                            hint="SELECT * FROM querygate.functions lists what you may call")

    def _adhoc_allowed(self) -> bool:
        return bool(self.view.adhoc_roles(self.identity))

    async def _guarded(self, work: Awaitable[CallResult],
                       track: Callable[[asyncio.Task[Any]], None] | None) -> CallResult:
        task: asyncio.Task[CallResult] = asyncio.ensure_future(work)
        if track is not None:
            track(task)
        watch = _HangUpWatch(task, self.client_gone)  # a client that hangs up: cancelled
        try:
            return await task
        except QuerygateError as exc:
            raise err.from_querygate(exc) from None
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the session itself is closing
            raise err.WireError(err.QUERY_CANCELED,
                                "canceling statement due to user request") from None
        finally:
            watch.stop()

    async def _call(self, call: sql.Call, params: Sequence[object],
                    track: Callable[[asyncio.Task[Any]], None] | None) -> Outcome:
        function = self.gateway.functions[call.function].function
        try:
            values = call_params(call, function, params)
        except BadParameters as exc:
            await self.check_identity()
            raise err.from_querygate(exc) from None
        result = await self._guarded(self.gateway.call(
            self.token, call.function, values, self.reason, self.client_addr, client="postgres",
            application=self.application), track)
        fields = self._result_fields(call.function, result)
        if call.columns is not None:  # ``SELECT a, b FROM fn(…)``: those columns, in that order
            keep = _projected(call, result.columns)
            fields = [fields[i] for i in keep]
            names = [result.columns[i] for i in keep]
            result = dataclasses.replace(
                result, columns=names, rows=[[row[i] for i in keep] for row in result.rows],
                fields={c: how for c, how in result.fields.items() if c in names})
        return _result_outcome(result, fields)

    def _result_fields(self, function: str, result: CallResult) -> list[Field]:
        """The RowDescription of a call's result (masked columns as text), worked out once per
        function, columns and masks, and shared by every session."""
        key = (function, tuple(result.columns), frozenset(result.fields))
        fields = self.view.fields.get(key)
        if fields is None:
            oids = dict(zip((c.name for c in self.gateway.functions[function].columns),
                            self.view.types.get(function, ()), strict=False))
            fields = [_field(name, t.TEXT if name in result.fields else catalog.wire_oid(
                oids.get(name, t.TEXT))) for name in result.columns]
            if len(self.view.fields) >= FIELDS_CACHED:
                self.view.fields.clear()
            self.view.fields[key] = fields
        return list(fields)

    async def _adhoc(self, text: str,
                     track: Callable[[asyncio.Task[Any]], None] | None) -> Outcome:
        result = await self._guarded(self.gateway.sql(
            self.token, text, self.reason, self.client_addr, client="postgres",
            application=self.application), track)
        fields = []
        for i, name in enumerate(result.columns):
            oid = next((t.oid_of_value(row[i]) for row in result.rows if row[i] is not None),
                       None) if name not in result.fields else t.TEXT
            fields.append(_field(name, catalog.wire_oid(oid or t.TEXT)))
        return _result_outcome(result, fields)

    def _session(self, statement: sql.Session) -> Outcome:
        if statement.kind == "show":
            name = statement.name or ""
            if name == "all":
                rows: list[list[object]] = [[k, v, ""] for k, v in sorted(self._visible().items())]
                return Outcome("SHOW", [_field("name", t.TEXT), _field("setting", t.TEXT),
                                        _field("description", t.TEXT)], rows)
            value = self._visible().get(name)
            if value is None:
                raise err.WireError(err.UNDEFINED_OBJECT,
                                    f'unrecognized configuration parameter "{name[:63]}"')
            return Outcome("SHOW", [_field(name, t.TEXT)], [[value]])
        if statement.kind in ("set", "reset"):
            return self._set(statement)
        if statement.kind == "deallocate":
            self.on_deallocate(statement.name)
        if statement.kind == "discard":
            self.on_deallocate(None)
        return Outcome(statement.tag)

    def _visible(self) -> dict[str, str]:
        shown = {**DEFAULTS, **self.settings, "session_authorization": self.identity.email}
        if self.reason is not None:
            shown[REASON_SETTING] = self.reason
        return shown

    def _set(self, statement: sql.Session) -> Outcome:
        name, value = statement.name, statement.value
        reported: list[tuple[str, str]] = []
        if name is None:  # SET TRANSACTION / SESSION CHARACTERISTICS
            return Outcome(statement.tag)
        if name == REASON_SETTING:
            self.reason = value if statement.kind == "set" else None
            return Outcome(statement.tag)
        names = list(self.settings) if name == "all" else [name]
        for setting in names:
            new = value if statement.kind == "set" else None
            allowed = _FIXED.get(setting)
            if allowed and new is not None and new.strip("'\" ").lower() not in allowed:
                raise err.WireError(err.FEATURE_NOT_SUPPORTED,
                                    f"querygate speaks only {setting} = {allowed[0].upper()}")
            if new is None:
                self.settings.pop(setting, None)
            else:
                self.settings[setting] = new[:200]
            if setting in REPORTED:
                reported.append((REPORTED[setting], self._visible().get(setting, "")))
        return Outcome(statement.tag, reported=reported)

    def _constant(self, items: tuple[tuple[str, str], ...]) -> Outcome:
        fields, row = [], []
        for name, expression in items:
            kind, _, arg = expression.partition(":")
            value: object
            if kind == "number":
                value, oid = (int(arg), t.INT4) if arg.isdigit() else (arg, t.NUMERIC)
            elif kind == "string":
                value, oid = arg, t.TEXT
            else:
                value, oid = self._function_value(arg)
            fields.append(_field(name, oid))
            row.append(value)
        return Outcome("SELECT 1", fields, [row])

    def _function_value(self, spec: str) -> tuple[object, int]:
        name, _, joined = spec.partition(":")
        args = joined.split("\x1f")
        arg = args[0]
        if name == "version":
            return f"PostgreSQL {SERVER_VERSION}, querygate's PostgreSQL front door", t.TEXT
        if name in ("current_database", "current_catalog"):
            return self.database, t.NAME
        if name == "current_schema":
            return "public", t.NAME
        if name in ("current_user", "session_user", "user"):
            return self.identity.email, t.NAME
        if name == "pg_backend_pid":
            return self.pid, t.INT4
        if name == "current_setting":
            value = self._visible().get(arg.lower())
            if value is None:
                raise err.WireError(err.UNDEFINED_OBJECT,
                                    f'unrecognized configuration parameter "{arg[:63]}"')
            return value, t.TEXT
        if name == "inet_server_port":
            return None, t.INT4
        if name == "set_config" and len(args) == 3:  # the session's own setting, as SET does
            self._set(sql.Session("set", "SET", args[0].lower(), args[1]))
            return args[1], t.TEXT
        return 0, t.INT8


class _HangUpWatch:
    """Cancels a running statement once its client has closed the connection: a timer that
    looks every ``GONE_CHECK_S`` while the statement runs (no polling task, no waiter)."""

    def __init__(self, task: asyncio.Task[Any], gone: Callable[[], bool]) -> None:
        self.task, self.gone = task, gone
        self.loop = asyncio.get_running_loop()
        self.handle = self.loop.call_later(GONE_CHECK_S, self._check)

    def _check(self) -> None:
        if self.task.done():
            return
        if self.gone():
            self.task.cancel()
            return
        self.handle = self.loop.call_later(GONE_CHECK_S, self._check)

    def stop(self) -> None:
        self.handle.cancel()


def _field(name: str, oid: int) -> Field:
    return Field(name, oid, t.SIZES.get(oid, -1))


def _rows(rows: catalog.Rows) -> Outcome:
    return Outcome(f"SELECT {len(rows.rows)}",
                   [_field(n, o) for n, o in zip(rows.names, rows.oids, strict=True)], rows.rows)


def _projected(call: sql.Call, columns: Sequence[str]) -> list[int]:
    """The indexes of the columns ``call`` names, in its order; all of them for ``*``."""
    if call.columns is None:
        return list(range(len(columns)))
    keep = []
    for name in call.columns:
        if name not in columns:
            raise err.WireError(err.UNDEFINED_COLUMN, f"column {name[:63]!r} is not in the result "
                                f"of {call.function} for your roles (SELECT * FROM "
                                f"{call.function}(…) shows what is)")
        keep.append(columns.index(name))
    return keep



def _result_outcome(result: CallResult, fields: list[Field]) -> Outcome:
    notices = []
    if result.fields:
        applied = ", ".join(f"{c} ({how})" for c, how in sorted(result.fields.items()))
        notices.append(f"querygate masks applied: {applied}")
    if result.truncated:
        notices.append(f"querygate returned the first {len(result.rows)} rows; the rest were cut "
                       "(max_rows)")
    return Outcome(f"SELECT {len(result.rows)}", fields, result.rows, notices)


def _declared_params(call: sql.Call, function: Function) -> dict[int, int]:
    """``$n`` → the declared type OID of the parameter it is bound to."""
    by_name = {p.name: p for p in function.parameters}
    found: dict[int, int] = {}
    pairs = [*zip(function.parameters, call.positional, strict=False),
             *((by_name[n], v) for n, v in call.named if n in by_name)]
    for parameter, value in pairs:
        if isinstance(value, sql.Param):
            found[value.index] = t.param_oid(parameter.type)
    return found


def call_params(call: sql.Call, function: Function, params: Sequence[object]) -> dict[str, object]:
    """The call's arguments by parameter name, literals read as their declared types. What does
    not fit (an extra argument, a literal of the wrong form) is passed on as it is, so the
    gateway refuses it, and audits the refusal, like any bad parameter."""
    declared = function.parameters
    values: dict[str, object] = {}
    types = {p.name: p.type for p in declared}
    names = [p.name for p in declared] + [f"${i}" for i in range(len(declared) + 1,
                                                               len(call.positional) + 1)]
    for name, value in [*zip(names, call.positional, strict=False), *call.named]:
        if name in values:
            raise BadParameters(f"argument {name[:63]} is given twice", parameter=name[:63])
        values[name] = _argument(value, types.get(name, "text"), params)
    return values


def _argument(value: sql.Value, type_name: str, params: Sequence[object]) -> object:
    if isinstance(value, sql.Param):
        if not 0 < value.index <= len(params):
            raise BadParameters(f"there is no parameter ${value.index}")
        return params[value.index - 1]
    if isinstance(value, list):
        element = type_name.removesuffix("[]")
        return [_argument(v, element, params) for v in value]
    if isinstance(value, str):
        try:
            return t.decode_param(value.encode("utf-8"), 0, t.param_oid(type_name))
        except t.BadValue:
            return value
    return value
