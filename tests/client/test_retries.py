"""Retries only where a replay cannot be a second audited access: a connection that never
opened, and GETs. A real socket that hangs up after reading the request stands in for a gateway
that went away mid-call."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
from querygate_client import AsyncClient, Client, ConnectionFailed, QuerygateError, Timeout


class HangUp:
    """Accepts connections, reads each request's head, and closes (or holds) without answering."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests: list[bytes] = []
        self.hold = False  # keep each connection open, unanswered, until the client gives up
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                self.requests.append(data.split(b"\r\n", 1)[0])
                while self.hold and conn.recv(65536):
                    pass


@pytest.fixture
def hangup() -> Iterator[HangUp]:
    server = HangUp()
    yield server
    server.sock.close()


def test_a_call_is_never_replayed(hangup: HangUp) -> None:
    with Client(hangup.url, token="t", retries=3) as qg, pytest.raises(ConnectionFailed):
        qg.call("get_customer_by_id", customer_id=1)
    assert hangup.requests == [b"POST /v1/call/get_customer_by_id HTTP/1.1"]


def test_sql_and_export_are_never_replayed(hangup: HangUp) -> None:
    with Client(hangup.url, token="t", retries=3) as qg:
        with pytest.raises(ConnectionFailed):
            qg.sql("SELECT 1")
        with pytest.raises(ConnectionFailed), qg.export("f"):
            pass
    assert [r.split(b" ")[1] for r in hangup.requests] == [b"/v1/sql", b"/v1/export/f"]


def test_a_get_is_retried(hangup: HangUp) -> None:
    with Client(hangup.url, token="t", retries=2) as qg, pytest.raises(ConnectionFailed):
        qg.functions()
    assert hangup.requests == [b"GET /v1/functions HTTP/1.1"] * 3


@pytest.mark.anyio
async def test_the_async_client_follows_the_same_rule(hangup: HangUp) -> None:
    async with AsyncClient(hangup.url, token="t", retries=1) as qg:
        with pytest.raises(ConnectionFailed):
            await qg.call("f")
        with pytest.raises(ConnectionFailed):
            await qg.functions()
    assert [r.split(b" ")[0] for r in hangup.requests] == [b"POST", b"GET", b"GET"]


def test_a_gateway_that_is_not_there_fails_cleanly() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Client(f"http://127.0.0.1:{port}", token="t", retries=1) as qg, \
            pytest.raises(ConnectionFailed, match="cannot reach"):
        qg.call("f")


def test_the_clients_own_timeout_is_a_timeout_without_status(hangup: HangUp) -> None:
    hangup.hold = True
    with Client(hangup.url, token="t", timeout=0.3) as qg, pytest.raises(Timeout) as late:
        qg.call("f")
    assert late.value.code == "client_timeout" and late.value.status is None
    assert len(hangup.requests) == 1


def test_a_function_name_stays_one_path_segment(hangup: HangUp) -> None:
    with Client(hangup.url, token="t", retries=0) as qg, pytest.raises(ConnectionFailed):
        qg.call("../sql")
    assert hangup.requests == [b"POST /v1/call/..%2Fsql HTTP/1.1"]


def test_an_export_without_its_header_is_an_error_not_a_crash() -> None:
    def empty(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"")

    with Client("http://gw.test", token="t", transport=httpx.MockTransport(empty)) as qg, \
            pytest.raises(QuerygateError, match="before its header"):
        list(qg.export("f"))
