"""Hostile clients: malformed, truncated and oversized messages, unknown types, a 1 GB startup
packet, thousands of idle connections. The server refuses cleanly, stays up, leaks nothing."""

from __future__ import annotations

import random
import resource
import socket
import struct
import time
from collections.abc import Iterator

import psycopg
import pytest

from querygate.pgwire import PostgresConfig
from tests.demo_env import Demo
from tests.pgwire.conftest import Front, start_front, stop_front, with_limits


@pytest.fixture(scope="module")
def strict(demo: Demo) -> Iterator[Front]:
    """A front door with short timeouts, so the tests can watch them fire."""
    made = start_front(demo, with_limits(PostgresConfig("127.0.0.1", 0), auth_timeout_s=1.0,
                                         idle_timeout_s=1.5, max_connections=500,
                                         max_message_bytes=65_536))
    yield made
    stop_front(made)


def _startup(user: str) -> bytes:
    body = struct.pack("!i", 196608) + b"user\x00" + user.encode() + b"\x00database\x00q\x00\x00"
    return struct.pack("!i", len(body) + 4) + body


def _read_all(sock: socket.socket, timeout: float = 5) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (TimeoutError, ConnectionResetError):
        pass
    return b"".join(chunks)


def _logged_in(front: Front, name: str = "alice") -> socket.socket:
    """A raw socket past authentication (ReadyForQuery read)."""
    sock = socket.create_connection(("127.0.0.1", front.port))
    sock.sendall(_startup(f"{name}@example.com"))
    assert sock.recv(9)[:1] == b"R"  # AuthenticationCleartextPassword
    token = front.demo.token(name).encode() + b"\x00"
    sock.sendall(b"p" + struct.pack("!i", len(token) + 4) + token)
    seen = b""
    sock.settimeout(5)
    while not seen.endswith(b"Z\x00\x00\x00\x05I"):
        seen += sock.recv(65536)
    return sock


def _still_serves(front: Front) -> None:
    with front.connect("alice") as conn:
        row = conn.execute("SELECT * FROM get_customer_by_id(42)").fetchone()
        assert row is not None and row[0] == 42


def _settles(front: Front, at_most: int = 0, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while front.server.connections > at_most and time.monotonic() < deadline:
        time.sleep(0.05)
    assert front.server.connections <= at_most, f"{front.server.connections} connections left"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_a_startup_packet_claiming_a_gigabyte_is_refused_unread(strict: Front) -> None:
    peak = _rss_mb()
    with socket.create_connection(("127.0.0.1", strict.port)) as sock:
        sock.sendall(struct.pack("!ii", 1 << 30, 196608) + b"user\x00")
        answer = _read_all(sock)
    assert answer[:1] == b"E" and b"08P01" in answer and b"invalid startup packet length" in answer
    assert _rss_mb() - peak < 50  # nothing near a gigabyte was allocated
    _settles(strict)
    _still_serves(strict)


@pytest.mark.parametrize("packet", [
    struct.pack("!i", 3),  # a length shorter than itself
    struct.pack("!ii", 8, 12345678),  # an unknown protocol
    struct.pack("!ii", 16, 80877102),  # a cancel request cut short
    struct.pack("!ii", 20, 196608) + b"user\x00x",  # truncated, then the client goes
    struct.pack("!ii", 17, 196608) + b"user\x00\xff\xfe\x00\x00",  # not UTF-8
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # someone else's protocol
], ids=["short", "protocol", "cancel", "truncated", "utf8", "http"])
def test_malformed_startups_are_refused_cleanly(strict: Front, packet: bytes) -> None:
    with socket.create_connection(("127.0.0.1", strict.port)) as sock:
        sock.sendall(packet)
        sock.shutdown(socket.SHUT_WR)
        answer = _read_all(sock)
    assert answer == b"" or (answer[:1] == b"E" and b"FATAL" in answer)
    _settles(strict)


def test_unknown_oversized_and_malformed_messages_after_login(strict: Front) -> None:
    cases = {
        b"Y" + struct.pack("!i", 4): b"invalid frontend message type",
        b"Q" + struct.pack("!i", 200_000_000): b"over the limit",
        b"Q" + struct.pack("!i", 2): b"invalid message length",
        b"P" + struct.pack("!i", 16) + b"\x00SELECT 1\x00\x00\x00"  # then a Bind cut short
        + b"B" + struct.pack("!i", 8) + b"\x00\x00\x00\x01": b"shorter than its fields",
        b"P" + struct.pack("!i", 9) + b"\x00abc\x00": b"shorter than its fields",
        b"Q" + struct.pack("!i", 9) + b"abcde": b"not terminated",
        b"D" + struct.pack("!i", 7) + b"Zx\x00": b"Describe of neither",
    }
    for message, expected in cases.items():
        with _logged_in(strict) as sock:
            sock.sendall(message)
            answer = _read_all(sock)
        assert b"08P01" in answer and expected in answer, (message, answer)
    _settles(strict)
    _still_serves(strict)


def test_random_bytes_never_take_the_server_down(strict: Front) -> None:
    rng = random.Random(17)
    for _ in range(60):
        with _logged_in(strict) as sock:
            kind = rng.choice(b"QPBDECSHXdfcFpYz")
            body = rng.randbytes(rng.randrange(0, 40))
            length = rng.choice([len(body) + 4, rng.randrange(-5, 200)])
            sock.sendall(bytes([kind]) + struct.pack("!i", length) + body)
            sock.shutdown(socket.SHUT_WR)
            _read_all(sock, timeout=3)
    _settles(strict)
    _still_serves(strict)


def test_silent_and_idle_connections_time_out(strict: Front) -> None:
    silent = [socket.create_connection(("127.0.0.1", strict.port)) for _ in range(20)]
    trickle = socket.create_connection(("127.0.0.1", strict.port))
    trickle.sendall(struct.pack("!i", 100))  # then nothing: a slow-loris startup
    idle = _logged_in(strict)
    try:
        time.sleep(2.2)
        for sock in [*silent, trickle]:
            assert _read_all(sock, timeout=2) in (b"",)  # closed by the auth timeout
        answer = _read_all(idle, timeout=3)
        assert b"57P05" in answer and b"idle-session timeout" in answer
    finally:
        for sock in [*silent, trickle, idle]:
            sock.close()
    _settles(strict)


def test_two_thousand_idle_connections_opened_and_dropped(front: Front) -> None:
    """On the default limits (500 connections, 10 s to authenticate), so the crowd is still
    there when the last checks run, however slow the machine."""
    opened: list[socket.socket] = []
    try:
        for _ in range(2000):
            opened.append(socket.create_connection(("127.0.0.1", front.port)))
        time.sleep(0.3)
        assert front.server.connections <= 500  # the rest were refused at once
        refused = 0
        for sock in opened[-100:]:
            sock.settimeout(2)
            try:
                answer = sock.recv(200)
            except TimeoutError:
                continue
            refused += b"53300" in answer
        assert refused == 100  # the last hundred came after the limit: each told why
        _still_serves_despite_the_crowd(front)
    finally:
        for sock in opened:
            sock.close()
    _settles(front, within=15)
    _still_serves(front)


def _still_serves_despite_the_crowd(front: Front) -> None:
    """While the crowd holds every slot, a new client is refused, with the reason."""
    with pytest.raises(psycopg.OperationalError, match="too many clients"):
        front.connect("alice").close()
