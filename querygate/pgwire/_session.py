"""One authenticated connection: the simple and extended query protocols over a Runner."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from querygate.pgwire import _codec as wire
from querygate.pgwire import _errors as err
from querygate.pgwire import _sql as sql
from querygate.pgwire import _types as t
from querygate.pgwire._statements import Outcome, Runner, Statement, classify

FLUSH_BYTES = 65_536
MAX_PREPARED = 1000
_ABORTED = "current transaction is aborted, commands ignored until end of transaction block"


@dataclass
class Prepared:
    statement: Statement
    declared: list[int]  # parameter type OIDs as the client gave them (0: unspecified)
    pending: Outcome | None = None  # run early to describe it; the next Execute takes it
    oids: list[int] | None = None  # the parameter types, worked out once


@dataclass
class Portal:
    prepared: Prepared
    params: list[object]
    formats: list[int]
    outcome: Outcome | None = None
    sent: int = 0
    described: bool = False
    notices: list[str] = field(default_factory=list)


class Closing(Exception):
    """The connection ends (Terminate, a FATAL error, an idle timeout)."""


class Connection:
    """The protocol loop of one session after authentication."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 runner: Runner, *, idle_timeout_s: float, max_message_bytes: int) -> None:
        self.reader, self.writer, self.runner = reader, writer, runner
        self.idle_timeout_s, self.max_message_bytes = idle_timeout_s, max_message_bytes
        self.out = bytearray()
        self.status = b"I"
        self.statements: dict[str, Prepared] = {}
        self.portals: dict[str, Portal] = {}
        self.failed = False  # extended protocol: skip to Sync after an error
        self.running: asyncio.Task[Any] | None = None
        runner.on_deallocate = self._deallocate
        runner.client_gone = lambda: _hung_up(reader)

    # ---- I/O -------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.out += data

    async def flush(self) -> None:
        if self.out:
            self.writer.write(bytes(self.out))
            self.out.clear()
        await self.writer.drain()

    async def _maybe_flush(self) -> None:
        if len(self.out) >= FLUSH_BYTES:
            await self.flush()

    def cancel(self) -> None:
        """A CancelRequest with this session's key: stop the statement running now."""
        if self.running is not None and not self.running.done():
            self.running.cancel()

    def _track(self, task: asyncio.Task[Any]) -> None:
        self.running = task

    # ---- the loop --------------------------------------------------------------------------

    async def serve(self) -> None:
        self.send(wire.ready_for_query(self.status))
        await self.flush()
        idle = _IdleWatch(self.idle_timeout_s)
        try:
            while True:
                try:
                    with idle:
                        kind, body = await wire.read_message(self.reader, self.max_message_bytes)
                except _Idle:
                    self.send(wire.error_response(err.IDLE_TIMEOUT, "terminating connection due "
                                                  "to idle-session timeout", severity="FATAL"))
                    return
                if kind == b"X":
                    return
                await self._dispatch(kind, body)
        except Closing:
            return
        finally:
            idle.stop()
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.flush()

    async def _dispatch(self, kind: bytes, body: bytes) -> None:
        if kind == b"Q":
            await self._simple(wire.Cursor(body).cstring())
            return
        if kind == b"S":
            self.failed = False
            if self.status == b"I":
                self.portals.clear()
            self.send(wire.ready_for_query(self.status))
            await self.flush()
            return
        if kind == b"H":
            await self.flush()
            return
        handler = {b"P": self._parse, b"B": self._bind, b"D": self._describe,
                   b"E": self._execute, b"C": self._close}.get(kind)
        if handler is None:
            self._fatal(err.PROTOCOL_VIOLATION, f"invalid frontend message type {kind[0]}")
            return
        if self.failed:
            return
        try:
            await handler(wire.Cursor(body))
        except err.WireError as exc:
            self._error(exc)
            self.failed = True
        await self._maybe_flush()

    def _fatal(self, sqlstate: str, message: str) -> None:
        self.send(wire.error_response(sqlstate, message, severity="FATAL"))
        raise Closing

    def _error(self, exc: err.WireError) -> None:
        self.send(wire.error_response(exc.sqlstate, exc.message, hint=exc.hint,
                                      severity="FATAL" if exc.fatal else "ERROR"))
        if exc.fatal:
            raise Closing
        if self.status == b"T":
            self.status = b"E"

    # ---- running a statement ---------------------------------------------------------------

    async def _run(self, statement: Statement, params: Sequence[object] = ()) -> Outcome:
        session = statement.session
        if self.status == b"E" and not (session and session.kind in ("commit", "rollback",
                                                                     "rollback_to")):
            raise err.WireError(err.IN_FAILED_TRANSACTION, _ABORTED)
        try:
            outcome = await self.runner.run(statement, params, self._track)
        finally:
            self.running = None
        if session is not None:
            self._transaction(session.kind, outcome)
        return outcome

    def _transaction(self, kind: str, outcome: Outcome) -> None:
        if kind == "begin":
            self.status = b"T"
        elif kind in ("commit", "rollback"):
            if self.status == b"E":
                outcome.tag = "ROLLBACK"
            self.status = b"I"
        elif kind == "rollback_to" and self.status == b"E":
            self.status = b"T"

    def _send_outcome_head(self, outcome: Outcome, formats: Sequence[int] | None) -> None:
        for notice in outcome.notices:
            self.send(wire.notice_response(notice))
        outcome.notices = []
        for name, value in outcome.reported:
            self.send(wire.parameter_status(name, value))
        if formats is not None and outcome.fields is not None:
            self.send(wire.row_description(outcome.fields, _formats(formats, len(outcome.fields))))

    async def _send_rows(self, outcome: Outcome, formats: Sequence[int], start: int,
                         limit: int) -> int:
        fields = outcome.fields or []
        codes = _formats(formats, len(fields))
        end = len(outcome.rows) if limit <= 0 else min(len(outcome.rows), start + limit)
        writers = [t.encoder(f.type_oid, c) for f, c in zip(fields, codes, strict=True)]
        for row in outcome.rows[start:end]:
            try:
                values = [None if v is None else write(v)
                          for v, write in zip(row, writers, strict=True)]
            except (ValueError, TypeError, OverflowError, AttributeError):
                raise err.WireError(err.INTERNAL, "a result value does not fit its column's "
                                    "type") from None
            self.send(wire.data_row(values))
            await self._maybe_flush()
        return end

    # ---- simple query ----------------------------------------------------------------------

    async def _simple(self, text: str) -> None:
        try:
            statements = sql.split(text)
        except sql.SqlSyntaxError as exc:
            statements = []
            self._error(err.WireError(err.SYNTAX_ERROR, str(exc)))
        for stext, tokens in statements:
            statement = classify(stext, tokens, self.runner.gateway.functions)
            try:
                outcome = await self._run(statement)
                if outcome.empty:
                    self.send(wire.EMPTY_QUERY)
                    continue
                self._send_outcome_head(outcome, [0])
                await self._send_rows(outcome, [0], 0, 0)
                self.send(wire.command_complete(outcome.tag))
            except err.WireError as exc:
                self._error(exc)
                break
        self.send(wire.ready_for_query(self.status))
        await self.flush()

    # ---- extended query --------------------------------------------------------------------

    async def _parse(self, cur: wire.Cursor) -> None:
        name, text = cur.cstring(), cur.cstring()
        count = cur.int16()
        if count < 0:
            raise wire.ProtocolViolation("negative parameter count")
        declared = [cur.uint32() for _ in range(count)]
        cur.done()
        try:
            statements = sql.split(text)
        except sql.SqlSyntaxError as exc:
            raise err.WireError(err.SYNTAX_ERROR, str(exc)) from None
        if len(statements) > 1:
            raise err.WireError(err.SYNTAX_ERROR,
                                "cannot insert multiple commands into a prepared statement")
        if name and name in self.statements:
            raise err.WireError("42P05", f'prepared statement "{name[:63]}" already exists')
        if len(self.statements) >= MAX_PREPARED:
            raise err.WireError(err.PROGRAM_LIMIT, f"more than {MAX_PREPARED} prepared statements")
        stext, tokens = statements[0]
        statement = classify(stext, tokens, self.runner.gateway.functions)
        self.statements[name] = Prepared(statement, declared)
        self.send(wire.PARSE_COMPLETE)

    def _prepared(self, name: str) -> Prepared:
        prepared = self.statements.get(name)
        if prepared is None:
            raise err.WireError(err.INVALID_STATEMENT_NAME,
                                f'prepared statement "{name[:63]}" does not exist')
        return prepared

    def _param_oids(self, prepared: Prepared) -> list[int]:
        if prepared.oids is None:
            prepared.oids = self.runner.param_oids(prepared.statement, prepared.declared)
        return prepared.oids

    async def _bind(self, cur: wire.Cursor) -> None:
        portal, name = cur.cstring(), cur.cstring()
        prepared = self._prepared(name)
        param_formats = [cur.int16() for _ in range(_count(cur))]
        raw = [cur.value() for _ in range(_count(cur))]
        result_formats = [cur.int16() for _ in range(_count(cur))]
        cur.done()
        oids = self._param_oids(prepared)
        if len(raw) != len(oids):
            raise err.WireError(err.PROTOCOL_VIOLATION, f"bind message supplies {len(raw)} "
                                f"parameters, but the statement requires {len(oids)}")
        formats = _formats(param_formats, len(raw))
        try:
            params = [t.decode_param(v, f, o) for v, f, o in zip(raw, formats, oids, strict=True)]
        except t.BadValue as exc:
            raise err.WireError(err.INVALID_PARAMETER, f"a parameter value {exc}") from None
        if any(f not in (0, 1) for f in result_formats):
            raise err.WireError(err.PROTOCOL_VIOLATION, "unknown result format code")
        if portal not in self.portals and len(self.portals) >= MAX_PREPARED:
            raise err.WireError(err.PROGRAM_LIMIT, f"more than {MAX_PREPARED} open portals")
        self.portals[portal] = Portal(prepared, params, result_formats)
        self.send(wire.BIND_COMPLETE)

    async def _describe(self, cur: wire.Cursor) -> None:
        what, name = cur.byte(), cur.cstring()
        cur.done()
        if what == b"S":
            prepared = self._prepared(name)
            oids = self._param_oids(prepared)
            self.send(wire.parameter_description(oids))
            fields = self.runner.describe(prepared.statement)
            if fields is None and self._returns_rows(prepared.statement):
                # run to learn the columns; without parameters, the next Execute takes this
                # result, with them its rows are not the ones the client will bind
                outcome = await self._run(prepared.statement, [None] * len(oids))
                fields = outcome.fields
                if not oids:
                    prepared.pending = outcome
            self.send(wire.NO_DATA if fields is None else
                      wire.row_description(fields, [0] * len(fields)))
            return
        if what != b"P":
            raise wire.ProtocolViolation("Describe of neither a statement nor a portal")
        portal = self._portal(name)
        fields = self.runner.describe(portal.prepared.statement)
        if fields is None and self._returns_rows(portal.prepared.statement):
            await self._ensure_run(portal)
            fields = portal.outcome.fields if portal.outcome else None
        portal.described = True
        self.send(wire.NO_DATA if fields is None else
                  wire.row_description(fields, _formats(portal.formats, len(fields))))

    @staticmethod
    def _returns_rows(statement: Statement) -> bool:
        session = statement.session
        return statement.kind in ("functions", "types", "catalog", "constant", "other") or (
            session is not None and session.kind == "show")

    def _portal(self, name: str) -> Portal:
        portal = self.portals.get(name)
        if portal is None:
            raise err.WireError(err.INVALID_CURSOR_NAME, f'portal "{name[:63]}" does not exist')
        return portal

    async def _ensure_run(self, portal: Portal) -> None:
        if portal.outcome is not None:
            return
        prepared = portal.prepared
        if prepared.pending is not None:
            portal.outcome, prepared.pending = prepared.pending, None
        else:
            portal.outcome = await self._run(prepared.statement, portal.params)

    async def _execute(self, cur: wire.Cursor) -> None:
        name, limit = cur.cstring(), cur.int32()
        cur.done()
        portal = self._portal(name)
        await self._ensure_run(portal)
        outcome = portal.outcome
        assert outcome is not None
        if outcome.empty:
            self.send(wire.EMPTY_QUERY)
            return
        self._send_outcome_head(outcome, None)
        if outcome.fields is None:
            self.send(wire.command_complete(outcome.tag))
            return
        portal.sent = await self._send_rows(outcome, portal.formats, portal.sent, limit)
        if portal.sent < len(outcome.rows):
            self.send(wire.PORTAL_SUSPENDED)
        else:
            self.send(wire.command_complete(outcome.tag))

    async def _close(self, cur: wire.Cursor) -> None:
        what, name = cur.byte(), cur.cstring()
        cur.done()
        if what == b"S":
            self.statements.pop(name, None)
        elif what == b"P":
            self.portals.pop(name, None)
        else:
            raise wire.ProtocolViolation("Close of neither a statement nor a portal")
        self.send(wire.CLOSE_COMPLETE)

    def _deallocate(self, name: str | None) -> None:
        if name is None:
            self.statements.clear()
            self.portals.clear()
        else:
            self.statements.pop(name, None)


class _Idle(Exception):
    """The client sent nothing for the idle timeout."""


class _IdleWatch:
    """The idle timeout between messages, as one timer per connection: entering and leaving
    the wait for a message only notes the time, where ``asyncio.timeout`` would schedule and
    cancel a timer for every message. When the timer finds the wait too long, it cancels the
    session's task; leaving the wait then raises ``_Idle``."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        self.since: float | None = None  # when the current wait began
        self.fired = False
        self.handle = self.loop.call_later(timeout_s, self._check)

    def __enter__(self) -> None:
        self.since = self.loop.time()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        self.since = None
        if self.fired and kind is asyncio.CancelledError and self.task is not None:
            self.fired = False
            if self.task.uncancel() == 0:
                raise _Idle from None

    def _check(self) -> None:
        now = self.loop.time()
        if self.since is not None and now - self.since >= self.timeout_s:
            if self.task is not None:
                self.fired = True
                self.task.cancel()
            return
        start = self.since if self.since is not None else now
        self.handle = self.loop.call_at(start + self.timeout_s, self._check)

    def stop(self) -> None:
        self.handle.cancel()


def _hung_up(reader: asyncio.StreamReader) -> bool:
    """True once the client closed its end, even with bytes still unread (psql and psycopg send
    Terminate before they close). ``at_eof`` alone waits for the buffer to drain; asyncio has no
    public flag for an end already seen, so its reader's own is read."""
    return reader.at_eof() or bool(getattr(reader, "_eof", False))


def _count(cur: wire.Cursor) -> int:
    count = cur.int16()
    if count < 0:
        raise wire.ProtocolViolation("negative count")
    return count


def _formats(codes: Sequence[int], width: int) -> list[int]:
    """Format codes for ``width`` values: none (all text), one for all, or one each."""
    if not codes:
        return [0] * width
    if len(codes) == 1:
        return [codes[0]] * width
    if len(codes) != width:
        raise err.WireError(err.PROTOCOL_VIOLATION,
                            f"{len(codes)} format codes for {width} values")
    return list(codes)
