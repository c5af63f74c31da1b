"""A throwaway PostgreSQL cluster with pgAudit loaded, logging to files (stderr, csvlog and
jsonlog).

Made with the machine's own PostgreSQL binaries (Debian's ``postgresql-N`` with
``postgresql-N-pgaudit``; ``.ci/run`` installs the latter) in a temporary folder, on a free
port, and removed afterwards. PostgreSQL refuses to run as root, so as root the cluster belongs
to the ``postgres`` system user the Debian packages create.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

PREFIX = "%m [%p] %u@%d app=%a client=%h "
PACKAGE = "postgresql-{major}-pgaudit"


@dataclass(frozen=True)
class AuditedServer:
    url: str  # superuser, database postgres
    port: int
    stderr_log: Path
    csv_log: Path
    json_log: Path


def binaries() -> tuple[Path, str] | None:
    """The newest PostgreSQL bin folder whose lib folder has pgaudit, and that PostgreSQL's
    major version; None when no installed PostgreSQL has pgaudit."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/lib/pgaudit.so"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if not found:
        return None
    root = found[-1].parent.parent
    return root / "bin", root.name


def unavailable() -> str | None:
    """Why the pgAudit server cannot run here, or None when it can."""
    if binaries() is not None:
        return None
    majors = sorted(p.name for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")
                    ) if Path("/usr/lib/postgresql").is_dir() else []
    if os.geteuid() == 0:
        return None  # root could install it: the test must fail, not skip (see .ci/run)
    package = PACKAGE.format(major=majors[-1] if majors else "N")
    return (f"pgAudit is not installed ({package}) and this user cannot install it; "
            f"`sudo apt-get install {package}` or run .ci/run as root")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_owner(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


CONFIG = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{folder}'
shared_preload_libraries = 'pgaudit'
logging_collector = on
log_destination = 'stderr,csvlog,jsonlog'
log_directory = '{folder}/log'
log_filename = 'postgresql.log'
log_rotation_age = 0
log_timezone = 'UTC'
log_connections = on
log_line_prefix = '{prefix}'
pgaudit.log = 'read, write'
pgaudit.log_relation = on
pgaudit.log_parameter = on
pgaudit.log_catalog = off
fsync = off
"""


@contextlib.contextmanager
def audited_server() -> Iterator[AuditedServer]:
    """Start the cluster; stop it and remove its folder afterwards."""
    found = binaries()
    if found is None:
        raise RuntimeError("pgAudit is not installed: apt-get install -y postgresql-15-pgaudit "
                           "(./run test does as root)")
    bin_dir, _ = found
    folder = Path(tempfile.mkdtemp(prefix="qg-pgaudit-"))
    data = folder / "data"
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    port = _free_port()
    try:
        subprocess.run(_as_owner([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                                  "-A", "trust", "--no-sync", "-E", "UTF8"]),
                       check=True, capture_output=True)
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(CONFIG.format(port=port, folder=folder, prefix=PREFIX))
        subprocess.run(_as_owner([str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-t", "30",
                                  "-l", str(folder / "startup.log"), "start"]),
                       check=True, capture_output=True)
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        _wait(url)
        logs = folder / "log"
        yield AuditedServer(url, port, logs / "postgresql.log", logs / "postgresql.csv",
                            logs / "postgresql.json")
    finally:
        subprocess.run(_as_owner([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                                  "stop"]), capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def _wait(url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
