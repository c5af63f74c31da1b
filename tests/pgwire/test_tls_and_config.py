"""TLS with a generated certificate, the ``postgres:`` settings, and ``querygate serve``."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import shutil
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psycopg
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from querygate.errors import ProjectError
from querygate.pgwire import PostgresConfig, postgres_config
from querygate.project import load_project
from tests.demo_env import Demo, running_server_process
from tests.pgwire.conftest import Front, start_front, stop_front
from tests.pgwire.helpers import events, last_seq, psql


def make_certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "server.crt", folder / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_front(demo: Demo, certificate: tuple[Path, Path]) -> Iterator[Front]:
    cert, key = certificate
    made = start_front(demo, PostgresConfig("127.0.0.1", 0, cert, key))
    yield made
    stop_front(made)


def test_tls_with_psycopg_and_psql(tls_front: Front, certificate: tuple[Path, Path]) -> None:
    dsn = tls_front.dsn("alice").replace("sslmode=disable", "sslmode=verify-full") \
        .replace("host=127.0.0.1", "host=localhost") + f" sslrootcert={certificate[0]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.pgconn.ssl_in_use
        row = conn.execute("SELECT * FROM get_customer_by_id(%s)", (42,)).fetchone()
        assert row is not None and row[4] == "****4242"
    done = psql(tls_front, "alice", "\\conninfo", "SELECT * FROM get_customer_by_id(42)",
                options={"sslmode": "require"})
    assert done.returncode == 0, done.stderr
    assert "SSL connection (protocol: TLSv1.3" in done.stdout and "Ada Canary" in done.stdout


def test_tls_required_off_loopback(demo: Demo, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    made = start_front(demo, PostgresConfig("0.0.0.0", 0, cert, key))
    try:
        with pytest.raises(psycopg.OperationalError, match="only over TLS"):
            made.connect("alice").close()
        dsn = made.dsn("alice").replace("sslmode=disable", "sslmode=require")
        with psycopg.connect(dsn) as conn:
            assert conn.pgconn.ssl_in_use
    finally:
        stop_front(made)


def test_ssl_request_is_answered_n_on_loopback_without_tls(front: Front) -> None:
    with socket.create_connection(("127.0.0.1", front.port)) as sock:
        sock.sendall(struct.pack("!ii", 8, 80877103))
        assert sock.recv(1) == b"N"
    done = psql(front, "alice", "SELECT 1")  # sslmode=disable in the DSN; prefer also works
    assert done.returncode == 0


def _project_with(demo: Demo, tmp_path: Path, section: object) -> Path:
    folder = tmp_path / "project"
    shutil.copytree(demo.project_dir, folder)
    config = yaml.safe_load((folder / "querygate.yaml").read_text())
    config["postgres"] = section
    (folder / "querygate.yaml").write_text(yaml.safe_dump(config))
    return folder


@pytest.mark.parametrize(("section", "message"), [
    ({"listen": "0.0.0.0:6432"}, "needs tls"),
    ({"listen": "6432"}, "must be HOST:PORT"),
    ({"listen": "127.0.0.1:6432", "tls": {"cert": "missing.crt", "key": "missing.key"}},
     "cannot load the certificate"),
    ({"listen": "127.0.0.1:6432", "max_connections": 0}, "positive number"),
    ({"listen": "127.0.0.1:6432", "max_conections": 5}, "did you mean 'max_connections'"),
])
def test_postgres_settings_are_checked(demo: Demo, tmp_path: Path, section: object,
                                       message: str) -> None:
    folder = _project_with(demo, tmp_path, section)
    with pytest.raises(ProjectError, match=message):
        postgres_config(load_project(folder))


def test_querygate_serve_runs_the_front_door(demo: Demo, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    folder = _project_with(demo, tmp_path, {"listen": f"127.0.0.1:{port}"})
    before = last_seq(demo)
    with running_server_process(folder):
        dsn = (f"host=127.0.0.1 port={port} dbname=querygate user=alice@example.com "
               f"password={demo.token('alice')} sslmode=disable")
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute("SELECT * FROM get_customer_by_id(%s)", (42,)).fetchone()
    assert row is not None and row[1] == "Ada Canary"
    (event,) = events(demo, "seq > %s AND function_name = 'get_customer_by_id'", before)
    assert event["context"]["client"] == "postgres" and event["decision"] == "allowed"


def test_serve_says_when_the_front_door_port_is_taken(demo: Demo, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        folder = _project_with(demo, tmp_path, {"listen": f"127.0.0.1:{port}"})
        done = subprocess.run([sys.executable, "-m", "querygate", "serve", "--port", "0",
                               "--project", str(folder)], capture_output=True, text=True,
                              timeout=60, check=False)
    assert done.returncode == 1
    assert f"postgres.listen: cannot listen on 127.0.0.1:{port}" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_limits_and_timeouts_carry_their_sqlstates(demo: Demo, tmp_path: Path) -> None:
    """A project with a 300 ms statement timeout and two calls a minute: 57014, then 53400."""
    folder = tmp_path / "limited"
    shutil.copytree(demo.project_dir, folder)
    config = yaml.safe_load((folder / "querygate.yaml").read_text())
    config["settings"] = {**(config.get("settings") or {}), "statement_timeout_ms": 300}
    config["limits"] = {"mode": "enforce", "default": {"calls_per_minute": 2}}
    (folder / "querygate.yaml").write_text(yaml.safe_dump(config))
    limited = start_front(dataclasses.replace(demo, project_dir=folder))
    try:
        with psycopg.connect(demo.admin_url) as lock, limited.connect("bob") as conn:
            lock.execute("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(psycopg.errors.QueryCanceled) as timed_out:
                conn.execute("SELECT * FROM get_customer_by_id(42)")
            lock.rollback()
            assert timed_out.value.sqlstate == "57014"
            assert conn.execute("SELECT * FROM get_customer_by_id(42)").fetchone() is not None
            with pytest.raises(psycopg.errors.ConfigurationLimitExceeded) as over:
                conn.execute("SELECT * FROM get_customer_by_id(42)")
            assert over.value.sqlstate == "53400"
    finally:
        stop_front(limited)


def test_array_parameters_in_every_form(demo: Demo, tmp_path: Path) -> None:
    folder = tmp_path / "arrays"
    shutil.copytree(demo.project_dir, folder)
    (folder / "queries" / "by_ids.sql").write_text(
        "-- name: customers_by_ids\n-- Customers by id.\n-- param ids: int[]\n"
        "SELECT id, full_name FROM customers WHERE id = ANY(:ids) ORDER BY id;\n")
    arrays = start_front(dataclasses.replace(demo, project_dir=folder))
    expected = [(42, "Ada Canary"), (43, "Oliver Patel")]
    try:
        with arrays.connect("bob") as conn:
            for text in ("SELECT * FROM customers_by_ids(ARRAY[42, 43])",
                         "SELECT * FROM customers_by_ids('{42,43}')",
                         "SELECT * FROM customers_by_ids(ids => '{42, 43}'::int[])"):
                assert conn.execute(text).fetchall() == expected, text
            for binary in (False, True):
                cur = conn.cursor(binary=binary)
                cur.execute("SELECT * FROM customers_by_ids(%s)", ([42, 43],))
                assert cur.fetchall() == expected
            with pytest.raises(psycopg.errors.InvalidParameterValue):
                conn.execute("SELECT * FROM customers_by_ids(%s)", (["42", "x"],))

        async def with_asyncpg() -> list[tuple[object, ...]]:
            conn = await asyncpg.connect(host="127.0.0.1", port=arrays.port, ssl=False,
                                         user="bob@example.com", password=demo.token("bob"),
                                         database="querygate")
            try:
                return [tuple(r) for r in await conn.fetch(
                    "SELECT * FROM customers_by_ids($1)", [42, 43])]
            finally:
                await conn.close()

        assert asyncio.run(with_asyncpg()) == expected
    finally:
        stop_front(arrays)
