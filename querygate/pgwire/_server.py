"""The listener: startup, TLS, cleartext-password authentication, limits and cancel requests.

Each connection is an asyncio task. Before authentication it has ``auth_timeout_s`` to
finish, and every length it sends is bounded; after, ``idle_timeout_s`` between messages.
Connections are counted in total (before authentication) and per identity (after).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import ssl
from collections import Counter
from typing import Any

from querygate.errors import NotAuthenticated, ProjectError, QuerygateError
from querygate.gateway import Gateway
from querygate.identity import Identity
from querygate.pgwire import _codec as wire
from querygate.pgwire import _errors as err
from querygate.pgwire._cancel import CancelRelay
from querygate.pgwire._catalog import GatewayView
from querygate.pgwire._config import PostgresConfig
from querygate.pgwire._session import Connection
from querygate.pgwire._statements import DEFAULTS, Runner

log = logging.getLogger("querygate.pgwire")
MAX_PASSWORD_BYTES = 16_384
_STARTUP_SETTINGS = {"application_name": "application_name", "client_encoding": "client_encoding",
                     "datestyle": "datestyle", "timezone": "timezone",
                     "extra_float_digits": "extra_float_digits", "search_path": "search_path"}


class _Refused(Exception):
    """The connection is answered with one FATAL error and closed."""

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate, self.message = sqlstate, message


async def describe_types(gateway: Gateway) -> dict[str, tuple[int, ...]]:
    """Each function's result column type OIDs, from PostgreSQL's description of its query
    (``LIMIT 0`` with NULL parameters, in a transaction rolled back: no row is read)."""
    types: dict[str, tuple[int, ...]] = {}
    async with gateway.directory() as conn:
        for name, analysed in gateway.functions.items():
            function = analysed.function
            async with conn.transaction(force_rollback=True), conn.cursor() as cur:
                await cur.execute(f"SELECT * FROM ({function.exec_sql}) AS querygate_describe "
                                  "LIMIT 0", dict.fromkeys(p.name for p in function.parameters))
                types[name] = tuple(int(c.type_code) for c in cur.description or ())
    return types


class PgServer:
    """querygate's PostgreSQL front door for one gateway."""

    def __init__(self, gateway: Gateway, config: PostgresConfig) -> None:
        self.gateway, self.config = gateway, config
        self.tls = config.ssl_context()
        self.view: GatewayView | None = None
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.sessions: dict[int, tuple[int, Connection]] = {}  # pid -> (secret key, session)
        self.per_user: Counter[str] = Counter()
        self.refused = 0  # connections turned away by a limit, for tests and metrics
        self.relay: CancelRelay | None = None  # with workers: cancels for the others' sessions

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    @property
    def connections(self) -> int:
        return len(self.tasks)

    async def start(self, *, reuse_port: bool = False) -> None:
        """Listen; ``reuse_port`` lets several worker processes share the port (and relays
        cancel requests between them)."""
        self.view = GatewayView(self.gateway, await describe_types(self.gateway))
        if reuse_port:
            project = self.gateway.project
            self.relay = CancelRelay(project.database_url, project.secret_key,
                                     self._key_of, self._cancel_held)
            await self.relay.start()
        try:
            self.server = await asyncio.start_server(self._accept, self.config.host,
                                                     self.config.port, backlog=1024,
                                                     reuse_port=reuse_port or None)
        except OSError as exc:
            if self.relay is not None:
                await self.relay.close()
            raise ProjectError(f"postgres.listen: cannot listen on {self.config.host}:"
                               f"{self.config.port}: {exc.strerror or exc}") from None

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.relay is not None:
            await self.relay.close()
        if self.server is not None:
            await self.server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        full = len(self.tasks) >= self.config.max_connections
        self.tasks.add(task)
        try:
            if full:
                self.refused += 1
                raise _Refused(err.TOO_MANY_CONNECTIONS, "sorry, too many clients already")
            await self._connection(reader, writer)
        except _Refused as exc:
            await _say_fatal(writer, exc.sqlstate, exc.message)
        except wire.ProtocolViolation as exc:
            await _say_fatal(writer, err.PROTOCOL_VIOLATION, str(exc))
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, ssl.SSLError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:  # one connection's bug never takes the listener down
            log.exception("postgres front door: connection failed")
            await _say_fatal(writer, err.INTERNAL, "internal error")
        finally:
            self.tasks.discard(task)
            await _close(writer)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        client_addr = str(peer[0]) if isinstance(peer, tuple) else None
        async with asyncio.timeout(self.config.auth_timeout_s):
            startup = await self._startup(reader, writer)
            if startup is None:
                return
            who, runner_args = await self._login(reader, writer, startup, client_addr)
        self.per_user[who.user_id] += 1
        pid, key = self._new_key()
        assert self.view is not None
        runner = Runner(self.gateway, self.view, token=runner_args["token"], identity=who,
                        database=runner_args["database"], client_addr=client_addr,
                        settings=runner_args["settings"], pid=pid)
        session = Connection(reader, writer, runner, idle_timeout_s=self.config.idle_timeout_s,
                             max_message_bytes=self.config.max_message_bytes)
        self.sessions[pid] = (key, session)
        try:
            writer.write(wire.AUTH_OK + self._status(runner) + wire.backend_key_data(pid, key))
            await session.serve()
        finally:
            del self.sessions[pid]
            self.per_user[who.user_id] -= 1
            if self.per_user[who.user_id] <= 0:
                del self.per_user[who.user_id]

    async def _startup(self, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> wire.Startup | None:
        encrypted = False
        for _ in range(3):  # at most a GSS request, then an SSL request, then the startup
            startup = await wire.read_startup(reader)
            if startup.code == wire.CANCEL_REQUEST:
                self._cancel(startup.cancel_key)
                return None
            if startup.code == wire.GSSENC_REQUEST and not encrypted:
                writer.write(b"N")
                await writer.drain()
                continue
            if startup.code == wire.SSL_REQUEST and not encrypted:
                if self.tls is None:
                    writer.write(b"N")
                    await writer.drain()
                    continue
                writer.write(b"S")
                await writer.drain()
                await writer.start_tls(self.tls)
                encrypted = True
                continue
            if startup.code != wire.PROTOCOL_3_0:
                raise wire.ProtocolViolation("unexpected request during startup")
            if not encrypted and not self.config.loopback:
                raise _Refused("28000", "querygate accepts connections only over TLS here "
                                        "(sslmode=require)")
            return startup
        raise wire.ProtocolViolation("too many requests before the startup message")

    async def _login(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     startup: wire.Startup, client_addr: str | None
                     ) -> tuple[Identity, dict[str, Any]]:
        params = startup.params
        user = params.get("user", "")
        if not user:
            raise _Refused("28000", "no user name was given; connect as your email address")
        settings = {_STARTUP_SETTINGS[k.lower()]: v[:200] for k, v in params.items()
                    if k.lower() in _STARTUP_SETTINGS}
        encoding = settings.get("client_encoding", "UTF8").strip("'\" ").lower().replace("-", "")
        if encoding not in ("utf8", "unicode"):
            raise _Refused(err.FEATURE_NOT_SUPPORTED, "querygate speaks only client_encoding UTF8")
        settings.pop("client_encoding", None)
        writer.write(wire.AUTH_CLEARTEXT)
        await writer.drain()
        kind, body = await wire.read_message(reader, MAX_PASSWORD_BYTES)
        if kind != b"p":
            raise wire.ProtocolViolation("expected a password message")
        cursor = wire.Cursor(body)
        token = cursor.cstring()
        cursor.done()
        failed = _Refused(err.INVALID_PASSWORD,
                          f'password authentication failed for user "{user[:63]}"')
        try:
            who = await self.gateway.authenticate(token or None, function="-",
                                                  client_addr=client_addr, client="postgres",
                                                  application=settings.get("application_name"))
        except NotAuthenticated:
            raise failed from None
        except QuerygateError as exc:
            raise _Refused(err.sqlstate_of(exc), exc.message) from None
        if who.email.lower() != user.lower():
            raise failed
        if self.per_user[who.user_id] >= self.config.max_connections_per_user:
            self.refused += 1
            raise _Refused(err.TOO_MANY_CONNECTIONS,
                           f'too many connections for role "{user[:63]}"')
        return who, {"token": token, "database": params.get("database") or user,
                     "settings": settings}

    def _status(self, runner: Runner) -> bytes:
        values = {"application_name": runner.settings.get("application_name", ""),
                  "client_encoding": "UTF8", "DateStyle": DEFAULTS["datestyle"],
                  "default_transaction_read_only": "on", "in_hot_standby": "off",
                  "integer_datetimes": "on", "IntervalStyle": "postgres", "is_superuser": "off",
                  "server_encoding": "UTF8", "server_version": DEFAULTS["server_version"],
                  "session_authorization": runner.identity.email,
                  "standard_conforming_strings": "on", "TimeZone": "UTC"}
        return b"".join(wire.parameter_status(k, v) for k, v in values.items())

    def _new_key(self) -> tuple[int, int]:
        while True:
            pid = secrets.randbelow(2**31 - 1) + 1
            if pid not in self.sessions:
                return pid, secrets.randbits(31)

    def _cancel(self, cancel_key: tuple[int, int] | None) -> None:
        """A CancelRequest: the session held here with that key, else (with workers) sent on
        to the worker that holds it."""
        if cancel_key is None:
            return
        pid, key = cancel_key
        held = self._key_of(pid)
        if held is not None and hmac.compare_digest(held.to_bytes(4, "big"),
                                                    (key & 0xFFFFFFFF).to_bytes(4, "big")):
            self._cancel_held(pid)
        elif self.relay is not None:
            self.relay.send_on(pid, key)

    def _key_of(self, pid: int) -> int | None:
        found = self.sessions.get(pid)
        return found[0] if found is not None else None

    def _cancel_held(self, pid: int) -> None:
        found = self.sessions.get(pid)
        if found is not None:
            found[1].cancel()


async def _say_fatal(writer: asyncio.StreamWriter, sqlstate: str, message: str) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError, ssl.SSLError, OSError):
        writer.write(wire.error_response(sqlstate, message, severity="FATAL"))
        async with asyncio.timeout(1):
            await writer.drain()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, TimeoutError, ssl.SSLError, OSError,
                             asyncio.CancelledError):
        async with asyncio.timeout(2):
            await writer.wait_closed()
